"""Inbound webhooks: the signature is checked on the raw body (HMAC or Standard Webhooks), bad input is a
clear 4xx that stores nothing, a good event creates or updates the contact, tags it, creates or moves its
card and starts a cadence, all logged; replay; the editor's preview; the pages."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.test import Client
from standardwebhooks.webhooks import Webhook

from accounts.models import Role
from campaigns.models import Enrollment
from campaigns.services import cadence_save
from crm.models import Contact, Tag
from inbox.models import Channel
from kanban.models import Card, CardMove
from kanban.services import board_create
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import make_member
from webhooks.inbound import hook_create
from webhooks.models import InboundAuth, InboundEvent, InboundHook

pytestmark = pytest.mark.django_db
PHONE = "+5511976541234"


def _post(tenant: Tenant, hook: InboundHook, body: bytes, headers: dict[str, str]) -> Any:
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return Client(HTTP_HOST=f"{tenant.slug}.localhost").post(
        f"/hooks/in/{hook.key}/", data=body, content_type="application/json", **extra
    )


def _hmac(secret: str, body: bytes) -> dict[str, str]:
    return {"X-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


@pytest.fixture
def setup(in_tenant_a: Tenant, channels: dict[str, int]) -> dict[str, Any]:
    board = board_create(name="Pedidos")
    first, second = list(board.stages.order_by("rank"))[:2]
    tag = Tag.objects.create(name="pagou")
    cadence = cadence_save(
        name="Pós-venda",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"delay_minutes": 60, "kind": "text", "body": "Obrigado!"}],
    )
    return {"board": board, "first": first, "second": second, "tag": tag, "cadence": cadence}


def _actions(s: dict[str, Any], stage: Any) -> list[dict[str, Any]]:
    return [
        {"type": "contact_upsert"},
        {"type": "tag_add", "tag_id": s["tag"].pk},
        {"type": "card_move", "board_id": s["board"].pk, "stage_id": stage.pk},
        {"type": "cadence_enroll", "cadence_id": s["cadence"].pk},
    ]


def test_a_signed_event_creates_the_contact_and_moves_its_card(in_tenant_a: Tenant, setup: dict[str, Any]) -> None:
    mapping = {"phone": "customer.phone", "name": "customer.name", "email": "customer.email"}
    hook, secret = hook_create(name="Pagamentos", mapping=mapping, actions=_actions(setup, setup["first"]))
    body = json.dumps({"customer": {"phone": "(11) 97654-1234", "name": "Rita", "email": "rita@example.com"}}).encode()
    answer = _post(in_tenant_a, hook, body, _hmac(secret, body))
    assert answer.status_code == 202, answer.content
    contact = Contact.objects.get(phone=PHONE)
    assert (contact.name, contact.email) == ("Rita", "rita@example.com")
    assert list(contact.tags.values_list("name", flat=True)) == ["pagou"]
    card = Card.objects.get(contact=contact)
    assert card.stage == setup["first"] and card.board == setup["board"]
    assert Enrollment.objects.filter(contact=contact, cadence=setup["cadence"]).count() == 1
    event = InboundEvent.objects.get()
    assert event.contact_id == contact.pk and [o["type"] for o in event.outcome] == [a["type"] for a in hook.actions]
    # the order ships: the same hook, reconfigured to the next stage, moves the same card
    hook.actions = _actions(setup, setup["second"])
    hook.save()
    assert _post(in_tenant_a, hook, body, _hmac(secret, body)).status_code == 202
    card.refresh_from_db()
    assert card.stage == setup["second"] and Card.objects.filter(contact=contact).count() == 1
    move = CardMove.objects.filter(card=card).order_by("-pk").first()
    assert move is not None and move.reason == "Pagamentos"
    assert Enrollment.objects.filter(contact=contact, cadence=setup["cadence"]).count() == 1  # not twice


@pytest.mark.parametrize(
    ("case", "status"),
    [("unsigned", 401), ("wrong secret", 401), ("not json", 400), ("no phone", 422), ("bad phone", 422)],
)
def test_bad_input_is_a_clear_4xx_and_stores_nothing(
    case: str, status: int, in_tenant_a: Tenant, setup: dict[str, Any]
) -> None:
    hook, secret = hook_create(name="Forms", mapping={"phone": "phone"}, actions=_actions(setup, setup["first"]))
    body = {
        "unsigned": b'{"phone": "+5511976541234"}',
        "wrong secret": b'{"phone": "+5511976541234"}',
        "not json": b"phone=+5511976541234",
        "no phone": b'{"telefone": "+5511976541234"}',
        "bad phone": b'{"phone": "123"}',
    }[case]
    headers = {} if case == "unsigned" else _hmac("other" if case == "wrong secret" else secret, body)
    before = (Contact.objects.count(), Card.objects.count(), Enrollment.objects.count())
    answer = _post(in_tenant_a, hook, body, headers)
    assert answer.status_code == status and answer.json()["error"]
    assert not InboundEvent.objects.exists()
    assert (Contact.objects.count(), Card.objects.count(), Enrollment.objects.count()) == before


def test_standard_webhooks_signatures_are_accepted_and_old_ones_refused(
    in_tenant_a: Tenant, setup: dict[str, Any]
) -> None:
    hook, secret = hook_create(
        name="Loja", auth=InboundAuth.STANDARD, mapping={"phone": "data.phone"}, actions=[{"type": "contact_upsert"}]
    )
    assert secret.startswith("whsec_")
    body = json.dumps({"data": {"phone": PHONE}})
    signer = Webhook(secret)
    now = int(time.time())
    fresh = {"webhook-id": "msg_1", "webhook-timestamp": str(now)}
    fresh["webhook-signature"] = signer.sign("msg_1", _dt(now), body)
    assert _post(in_tenant_a, hook, body.encode(), fresh).status_code == 202
    stale = {"webhook-id": "msg_2", "webhook-timestamp": str(now - 3600)}
    stale["webhook-signature"] = signer.sign("msg_2", _dt(now - 3600), body)
    assert _post(in_tenant_a, hook, body.encode(), stale).status_code == 401
    assert InboundEvent.objects.count() == 1


def _dt(epoch: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)


def test_replay_preview_and_pages(in_tenant_a: Tenant, setup: dict[str, Any]) -> None:
    owner = make_member(in_tenant_a, "inbound-owner@alpha.test", Role.OWNER)
    client = tenant_client(in_tenant_a, owner)
    created = client.post(
        "/settings/webhooks/inbound/",
        {
            "name": "Typeform",
            "auth": "hmac",
            "phone_path": "answers.0.phone",
            "name_path": "",
            "email_path": "",
            "tag_add": setup["tag"].pk,
            "card_stage": f"{setup['board'].pk}:{setup['first'].pk}",
            "enabled": "on",
        },
    )
    assert created.status_code == 201
    hook = InboundHook.objects.get(name="Typeform")
    secret = hook.secret["value"]
    assert secret in created.content.decode() and hook.key in created.content.decode()
    detail = client.get(f"/settings/webhooks/inbound/{hook.pk}/").content.decode()
    assert secret not in detail
    preview = client.post(
        f"/settings/webhooks/inbound/{hook.pk}/preview/", {"sample": '{"answers": [{"phone": "x1"}]}'}
    )
    assert "x1" in preview.content.decode()
    body = b'{"answers": [{"phone": "+5511976541234"}]}'
    assert _post(in_tenant_a, hook, body, _hmac(secret, body)).status_code == 202
    event = InboundEvent.objects.get()
    Contact.objects.get(phone=PHONE).tags.clear()
    assert client.post(f"/settings/webhooks/inbound/events/{event.pk}/replay/").status_code == 302
    assert list(Contact.objects.get(phone=PHONE).tags.all()) == [setup["tag"]]
    assert InboundEvent.objects.count() == 2
    agent = tenant_client(in_tenant_a, make_member(in_tenant_a, "inbound-agent@alpha.test", Role.AGENT))
    assert agent.get("/settings/webhooks/inbound/").status_code == 403
    hook.enabled = False
    hook.save()
    assert _post(in_tenant_a, hook, body, _hmac(secret, body)).status_code == 404


def test_a_hook_of_another_workspace_is_not_found_here(
    in_tenant_a: Tenant, tenant_b: Tenant, setup: dict[str, Any]
) -> None:
    hook, secret = hook_create(name="Alpha", mapping={"phone": "phone"}, actions=[])
    body = b'{"phone": "+5511976541234"}'
    answer = _post(tenant_b, hook, body, _hmac(secret, body))
    assert answer.status_code == 404 and not Contact.objects.filter(phone=PHONE).exists()
