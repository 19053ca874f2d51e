"""Every sending path as production runs it: committed rows, the real Celery worker, the provider
emulators over HTTP, statuses back through the live server. Each claim is checked against what the
emulator received, never against a `queued` row."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.db import connection

from campaigns.models import Campaign, CampaignStatus, Enrollment
from campaigns.selectors import campaign_stats
from campaigns.services import cadence_enroll, cadence_save, campaign_launch, campaign_save
from config.celery import app
from crm.models import Contact, Tag
from crm.services import contact_get_or_create
from emulators.meta import MetaEmulator
from emulators.twilio import TwilioEmulator
from inbox.models import Channel, Message, MessageStatus
from inbox.services import message_send
from tenants.models import Tenant
from tests.conftest import Worker
from tests.messaging import open_conversation
from tests.support import wait_until


def _phone() -> str:
    return f"+55119{uuid.uuid4().int % 10**8:08d}"


def _message(tenant: Tenant, message_id: int) -> Message:
    connection.set_tenant(tenant)
    return Message.objects.get(pk=message_id)


SMS_TAIL = " Responda SAIR para não receber mais."


def _received_by_meta(meta: MetaEmulator, phone: str) -> list[dict[str, Any]]:
    return [m for m in list(meta.sent.values()) if m.get("to") == phone.lstrip("+")]  # a BSUID send has no "to"


def _received_by_twilio(twilio: TwilioEmulator, phone: str) -> list[dict[str, Any]]:
    return [m for m in list(twilio.sent.values()) if m["to"] == phone]


def test_template_reply_reaches_meta_and_turns_read(
    app_server: str, celery_worker: Worker, meta_emulator: MetaEmulator, tenants: Any, channels: Any, committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = _phone()
    conversation = open_conversation(channels["whatsapp"], phone, window_open=False)
    message = message_send(
        conversation=conversation,
        type="template",
        template_name="order_update",
        template_language="pt_BR",
        template_variables={"body": ["Ana", "4411"]},
    )
    wait_until(lambda: _message(alpha, message.pk).status == MessageStatus.READ, timeout=30, what="template read")
    (sent,) = _received_by_meta(meta_emulator, phone)
    assert sent["type"] == "template" and sent["template"]["name"] == "order_update"
    assert sent["template"]["components"][0]["parameters"][1]["text"] == "4411"


def test_a_429_is_retried_later_and_sent_once(
    app_server: str, celery_worker: Worker, meta_emulator: MetaEmulator, tenants: Any, channels: Any, committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = _phone()
    meta_emulator.fail_next.extend([130429])
    message = message_send(conversation=open_conversation(channels["whatsapp"], phone), body="Depois do limite")
    wait_until(lambda: _message(alpha, message.pk).status == MessageStatus.READ, timeout=40, what="retried send")
    found = _message(alpha, message.pk)
    assert found.attempts == 2 and found.error_code == "130429"  # the first try's error is kept for the record
    assert len(_received_by_meta(meta_emulator, phone)) == 1


def test_text_and_sms_campaigns_reach_every_contact_once(
    app_server: str,
    celery_worker: Worker,
    meta_emulator: MetaEmulator,
    twilio_emulator: TwilioEmulator,
    tenants: Any,
    channels: Any,
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    tag = Tag.objects.create(name=f"e2e-text-{run}")
    phones = [_phone() for _ in range(6)]
    for i, phone in enumerate(phones):
        contact_get_or_create(phone=phone, name=f"Bia{i} Souza").tags.add(tag)
        open_conversation(channels["whatsapp"], phone)  # the 24-hour window is open: free text may go
    campaigns = [
        campaign_save(
            name=f"E2E {kind} {run}",
            channel=Channel.objects.get(pk=channels[kind]),
            audience={"tags": [tag.pk]},
            kind="text",
            body="Oi {{first_name}}, chegou a coleção nova!" + SMS_TAIL * (kind == "sms"),
            respect_quiet_hours=False,
        )
        for kind in ("whatsapp", "sms")  # different words: the same ones twice would be the duplicate guard's
    ]
    for campaign in campaigns:
        campaign_launch(campaign=campaign)

    def finished() -> bool:
        connection.set_tenant(alpha)
        return all(
            Campaign.objects.get(pk=c.pk).status == CampaignStatus.COMPLETED
            and campaign_stats(Campaign.objects.get(pk=c.pk))["processed"] == len(phones)
            for c in campaigns
        )

    wait_until(finished, timeout=60, interval=0.5, what="both campaigns to complete")
    for i, phone in enumerate(phones):
        (wa,) = _received_by_meta(meta_emulator, phone)
        (sms,) = _received_by_twilio(twilio_emulator, phone)
        assert wa["type"] == "text" and wa["text"]["body"] == f"Oi Bia{i}, chegou a coleção nova!"
        assert sms["body"] == f"Oi Bia{i}, chegou a coleção nova!{SMS_TAIL}"

    def delivered() -> bool:
        connection.set_tenant(alpha)
        stats = [campaign_stats(Campaign.objects.get(pk=c.pk)) for c in campaigns]
        return stats[0]["read"] == len(phones) and stats[1]["delivered"] == len(phones)

    wait_until(delivered, timeout=30, interval=0.5, what="the statuses to come back")


def test_an_sms_cadence_step_reaches_twilio(
    app_server: str, celery_worker: Worker, twilio_emulator: TwilioEmulator, tenants: Any, channels: Any, committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = _phone()
    contact = contact_get_or_create(phone=phone, name="Caio")
    cadence = cadence_save(
        name=f"E2E SMS cadence {uuid.uuid4().hex[:6]}",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"kind": "text", "body": "Oi {{first_name}}, tudo certo com o pedido?"}],
    )
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))

    def completed() -> bool:
        connection.set_tenant(alpha)
        return Enrollment.objects.get(cadence=cadence, contact=contact).status == "completed"

    wait_until(completed, timeout=30, interval=0.5, what="the cadence to complete")
    (sent,) = wait_until(lambda: _received_by_twilio(twilio_emulator, phone), timeout=10, what="the SMS")
    assert sent["body"] == "Oi Caio, tudo certo com o pedido?"


def test_a_send_whose_worker_dies_mid_call_is_marked_unknown_and_never_resent(
    app_server: str,
    celery_worker: Worker,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: Any,
    committed: Any,
    settings: Any,
) -> None:
    """SIGKILL the worker while Meta holds the request: the message may have gone out, so the sweep (the
    beat task, on a new worker) marks it unknown; nothing sends it again."""
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = _phone()
    meta_emulator.stall_s = 20
    try:
        message = message_send(conversation=open_conversation(channels["whatsapp"], phone), body="No meio do envio")
        wait_until(lambda: _received_by_meta(meta_emulator, phone), timeout=20, what="the request to reach Meta")
        assert _message(alpha, message.pk).status == MessageStatus.SENDING
        celery_worker.kill()
    finally:
        meta_emulator.stall_s = 0
    celery_worker.start()
    found = _message(alpha, message.pk)
    assert found.status == MessageStatus.SENDING and found.claimed_at is not None
    # Beat's sweep, as beat sends it, once the claim is older than the stuck threshold.
    stuck_after = 2
    time.sleep(max(0.0, stuck_after - (time.time() - found.claimed_at.timestamp())) + 0.5)
    sweep = {"kwargs": {"stuck_after_s": stuck_after}, "queue": "default", "headers": {"_schema_name": "public"}}
    result = app.send_task("inbox.sending_sweep", **sweep)
    assert result.get(timeout=30) >= 1
    found = _message(alpha, message.pk)
    assert found.status == MessageStatus.UNKNOWN and "worker stopped" in found.error_text
    time.sleep(1)
    assert len(_received_by_meta(meta_emulator, phone)) == 1  # sent once, never blindly again
