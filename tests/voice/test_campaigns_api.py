"""The voice campaigns REST API: create (agent, number, listed contacts or a segment/tags, pace and retries),
roles from the role table, another tenant's ids refused, and a launch through the API whose calls the real
worker places at the Retell emulator, paused and resumed through the API, counted by .../stats/."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.db import connection
from django.db.models import Max
from django.test import Client
from django.utils import timezone, translation
from django.utils.translation import gettext

from accounts.models import Role, User
from accounts.services import api_token_create
from crm.models import Contact, Tag
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY
from tests.support import make_member, wait_until
from voice.models import (
    FINAL_STATUSES,
    AgentStatus,
    Call,
    VoiceAgent,
    VoiceCampaign,
    VoiceCampaignStatus,
    VoiceNumber,
    VoiceSettings,
)
from voice.services import voice_agent_create, voice_api_key_set

URL = "/api/v1/voice-campaigns/"


def api_for(tenant: Tenant, user: User) -> Client:
    _token, raw = api_token_create(user=user, tenant=tenant, name=f"vc-{uuid.uuid4().hex[:6]}")
    return Client(HTTP_HOST=f"{tenant.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


def post(api: Client, url: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(url, body or {}, content_type="application/json")


def imported_number(e164: str) -> VoiceNumber:
    """A voice number already imported into Retell (what the number page's import button leaves)."""
    return VoiceNumber.objects.create(e164=e164, twilio_sid=f"PN{uuid.uuid4().hex}", retell_imported_at=timezone.now())


@pytest.mark.django_db
def test_create_refuses_other_tenants_ids_bad_audiences_and_roles_without_the_permission(
    agent: VoiceAgent,
    voice_a: VoiceSettings,
    tenant_a: Tenant,
    tenant_b: Tenant,
    owner_a: User,
    agent_a: User,
    retell_quiet: RetellEmulator,
) -> None:
    people = [
        Contact.objects.create(phone=f"+55119878{i}{uuid.uuid4().int % 10**4:04d}", name=f"A{i}") for i in range(2)
    ]
    tag = Tag.objects.create(name=f"api-{uuid.uuid4().hex[:6]}")
    number = imported_number(f"+55119300{uuid.uuid4().int % 10**5:05d}")
    not_imported = VoiceNumber.objects.create(e164=f"+55119301{uuid.uuid4().int % 10**5:05d}")
    free_agent_pk = (VoiceAgent.objects.aggregate(m=Max("pk"))["m"] or 0) + 1000
    free_number_pk = (VoiceNumber.objects.aggregate(m=Max("pk"))["m"] or 0) + 1000
    free_contact_pk = (Contact.objects.aggregate(m=Max("pk"))["m"] or 0) + 1000
    campaigns_before = VoiceCampaign.objects.count()

    connection.set_tenant(tenant_b)  # beta's own agent, number and contact, at ids alpha does not have
    VoiceAgent.objects.create(
        pk=free_agent_pk, name="Beta agent", prompt="x", from_number="+5511930000777", status=AgentStatus.PUBLISHED,
        retell_agent_id="agent_beta", retell_llm_id="llm_beta",
    )  # fmt: skip
    VoiceNumber.objects.create(pk=free_number_pk, e164="+5511930000778", retell_imported_at=timezone.now())
    Contact.objects.create(pk=free_contact_pk, phone="+5511987877777", name="Beta contact")
    connection.set_tenant(tenant_a)
    assert not VoiceAgent.objects.filter(pk=free_agent_pk).exists()

    owner, member = api_for(tenant_a, owner_a), api_for(tenant_a, agent_a)
    good = {
        "name": "Reativação API",
        "agent": agent.pk,
        "number": number.pk,
        "contacts": [p.pk for p in people],
        "max_concurrent": 1,
        "retries": 2,
        "retry_delay_minutes": 45,
    }
    refused = post(owner, URL, dict(good, agent=free_agent_pk))
    assert refused.status_code == 400 and "agent" in refused.json()["errors"]
    refused = post(owner, URL, dict(good, number=free_number_pk))
    assert refused.status_code == 400 and "number" in refused.json()["errors"]
    refused = post(owner, URL, dict(good, contacts=[people[0].pk, free_contact_pk]))
    with translation.override(tenant_a.language):  # the API answers in the tenant's language
        missing = gettext("Some of these contacts do not exist.")
        not_in_retell = gettext("This number is not imported into Retell yet: import it on the number's page first.")
        not_running = gettext("Only a running campaign can be paused.")
    assert refused.json()["errors"] == {"audience": [missing]}
    refused = post(owner, URL, dict(good, number=not_imported.pk))
    assert refused.status_code == 400
    assert refused.json()["errors"]["number"] == [not_in_retell]
    refused = post(owner, URL, dict(good, audience={"tags": [tag.pk]}))
    assert refused.status_code == 400 and "contacts" in refused.json()["errors"]
    refused = post(owner, URL, dict(good, max_concurrent=21, retries=6))
    assert set(refused.json()["errors"]) == {"max_concurrent", "retries"}
    assert post(member, URL, good).status_code == 403  # an agent may read campaigns, not create them
    assert VoiceCampaign.objects.count() == campaigns_before

    created = post(owner, URL, good)
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["agent"], body["number"], body["status"]) == (agent.pk, number.pk, "draft")
    assert body["audience"] == {"contacts": sorted(p.pk for p in people)}
    assert (body["max_concurrent"], body["retries"], body["retry_delay_minutes"]) == (1, 2, 45)
    assert body["stats"]["recipients"]["total"] == 0 and body["stats"]["calls"] == 0
    detail = f"{URL}{body['id']}/"
    by_tags = post(owner, URL, {"name": "Por tag", "agent": agent.pk, "audience": {"tags": [tag.pk]}})
    assert by_tags.status_code == 201 and by_tags.json()["number"] is None

    assert member.get(URL).status_code == 200
    assert [c["name"] for c in member.get(URL).json()["results"]][:2] == ["Por tag", "Reativação API"]
    assert member.get(f"{detail}stats/").json()["recipients"]["pending"] == 0
    for operation in ("launch", "pause", "resume"):
        assert post(member, f"{detail}{operation}/").status_code == 403, operation
    assert member.patch(detail, {"retries": 0}, content_type="application/json").status_code == 403
    patched = owner.patch(detail, {"max_concurrent": 3}, content_type="application/json")
    assert patched.status_code == 200 and patched.json()["max_concurrent"] == 3
    assert patched.json()["audience"] == body["audience"] and patched.json()["retries"] == 2  # the rest kept
    paused = post(owner, f"{detail}pause/")
    assert paused.status_code == 400 and paused.json()["errors"] == {"detail": [not_running]}
    assert owner.get(f"{URL}{body['id'] + 10**6}/").status_code == 404
    assert api_for(tenant_b, make_member(tenant_b, f"b-{uuid.uuid4().hex[:6]}@beta.test", Role.OWNER)).get(
        detail
    ).status_code in (401, 403, 404)  # beta's token never reaches alpha's campaign

    schema = owner.get("/api/v1/schema/?format=json").json()
    for path in (URL, f"{URL}{{id}}/launch/", f"{URL}{{id}}/pause/", f"{URL}{{id}}/resume/", f"{URL}{{id}}/stats/"):
        assert path in schema["paths"], path
    stats = schema["components"]["schemas"]["VoiceCampaignStats"]["properties"]
    assert {"recipients", "outcomes", "calls", "calls_in_progress", "answered"} <= set(stats)


def test_launched_through_the_api_the_worker_calls_from_the_campaigns_number_paused_and_resumed(
    app_server: str, tenants: Any, retell_emulator: RetellEmulator, committed: Any, celery_worker: Any
) -> None:
    alpha: Tenant = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    voice_api_key_set(api_key=RETELL_KEY)
    agent = voice_agent_create(
        name=f"API campanha {run}", prompt="Ligue.", voice_id="11labs-Adrian", from_number="+5511930000092",
        direction="outbound",
    )  # fmt: skip
    number = imported_number(f"+55119302{uuid.uuid4().int % 10**5:05d}")
    people = [
        Contact.objects.create(phone=f"+55119879{i}{uuid.uuid4().int % 10**4:04d}", name=f"API {i}") for i in range(3)
    ]
    owner = make_member(alpha, f"vc-api-{run}@alpha.test", Role.ADMIN)
    api = api_for(alpha, owner)
    created = post(
        api, URL, {"name": f"API {run}", "agent": agent.pk, "number": number.pk, "contacts": [p.pk for p in people],
                   "max_concurrent": 1},
    )  # fmt: skip
    assert created.status_code == 201, created.content
    detail = f"{URL}{created.json()['id']}/"

    launched = post(api, f"{detail}launch/")
    assert launched.status_code == 200, launched.content
    assert launched.json()["status"] == "running" and launched.json()["stats"]["recipients"]["total"] == 3
    paused = post(api, f"{detail}pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"

    connection.set_tenant(alpha)
    calls = Call.objects.filter(voice_campaign_id=created.json()["id"])
    wait_until(lambda: calls.exists() and not calls.exclude(status__in=list(FINAL_STATUSES)).exists(), timeout=30)
    made = calls.count()
    time.sleep(1.0)  # the ended call's fill has run by now: a paused campaign starts no new call
    assert calls.count() == made < 3
    stats = api.get(f"{detail}stats/").json()
    assert stats["recipients"]["pending"] == 3 - made and stats["calls_in_progress"] == 0

    resumed = post(api, f"{detail}resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"

    def done() -> bool:
        return bool(api.get(detail).json()["status"] == VoiceCampaignStatus.DONE)

    wait_until(done, timeout=60, interval=0.2)
    stats = api.get(f"{detail}stats/").json()
    assert stats["recipients"] == {"pending": 0, "calling": 0, "done": 3, "skipped": 0, "total": 3}
    assert stats["outcomes"]["answered"] == 3 and stats["calls"] == 3 and stats["answered"] == 3
    connection.set_tenant(alpha)
    at_retell = [c for c in list(retell_emulator.calls.values()) if c.get("to_number") in {p.phone for p in people}]
    assert len(at_retell) == 3 and {c["from_number"] for c in at_retell} == {number.e164}  # not the agent's number
