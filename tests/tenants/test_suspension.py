"""A suspended tenant sends nothing (messages, campaigns, cadences, calls) and its inbound events wait;
on reactivation everything that waited goes on. Run as production runs it: the real Celery worker, the
Graph API emulator, signed webhooks into the app server."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient, CampaignStatus, Enrollment, RecipientStatus
from campaigns.services import cadence_enroll, cadence_save, campaign_launch, campaign_save
from campaigns.tasks import cadence_tick, campaign_run, tick
from crm.models import Contact, Tag
from crm.services import contact_get_or_create
from emulators.meta import MetaEmulator
from inbox.ingest import HELD_OUTCOME, HELD_UNTIL
from inbox.models import Channel, Direction, Message, MessageStatus
from inbox.services import message_send
from inbox.tasks import dispatch_message
from intake.models import WebhookEvent
from tenants.models import Tenant
from tenants.services import tenant_reactivate, tenant_suspend
from tests.conftest import WA_PNID
from tests.messaging import open_conversation
from tests.support import wait_until
from voice.models import VoiceAgent
from voice.outbound import call_queue


def _phone() -> str:
    return f"+55119{uuid.uuid4().int % 10**8:08d}"


def _in(tenant: Tenant) -> None:
    connection.set_tenant(tenant)


def test_a_suspended_tenant_sends_nothing_and_catches_up_on_reactivation(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    schema = {"_schema_name": alpha.schema_name}
    run = uuid.uuid4().hex[:6]
    _in(alpha)
    channel = Channel.objects.get(pk=channels["whatsapp"])
    # Accepted while active, not sent yet (a campaign batch writes its messages before sending them).
    held_phone = _phone()
    conversation = open_conversation(channel.pk, held_phone)
    with transaction.atomic():  # committed already due later: a runner still serving the channel from an
        # earlier test must not take it before the suspension below (once suspended, no runner claims)
        held = message_send(conversation=conversation, body=f"held {run}", dispatch=False)
        Message.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=10))
    tag = Tag.objects.create(name=f"susp-{run}")
    campaign_phones = [_phone() for _ in range(3)]
    for phone in campaign_phones:
        contact_get_or_create(phone=phone).tags.add(tag)
    campaign = campaign_save(
        name=f"Suspended {run}",
        channel=channel,
        audience={"tags": [tag.pk]},
        kind="template",
        template_name="promo_susp",
        template_language="pt_BR",
        respect_quiet_hours=False,
    )
    cadence_phone = _phone()
    cadence_contact = contact_get_or_create(phone=cadence_phone)
    cadence = cadence_save(
        name=f"Suspended cadence {run}",
        channel=channel,
        respect_quiet_hours=False,
        steps=[{"kind": "template", "template_name": "hello_susp", "template_language": "pt_BR", "delay_minutes": 0}],
    )
    watched = {p.lstrip("+") for p in [held_phone, cadence_phone, *campaign_phones]}
    inbound_phone = _phone().lstrip("+")

    tenant_suspend(tenant=alpha, reason="unpaid")
    try:
        _in(alpha)
        with pytest.raises(ValidationError) as refused:
            message_send(conversation=open_conversation(channel.pk, _phone()), body="refused")
        assert refused.value.code == "tenant_suspended"
        with pytest.raises(ValidationError) as no_call:
            call_queue(contact=cadence_contact, agent=VoiceAgent(name="x", prompt="x"))
        assert no_call.value.code == "tenant_suspended"

        # Each sender runs in the worker and does nothing.
        assert dispatch_message.apply_async(args=(held.pk,), queue="dispatch", headers=schema).get(timeout=30) is None
        _in(alpha)
        campaign_launch(campaign=campaign)  # as if it had been running when the suspension came
        assert campaign_run.apply_async(args=(campaign.pk,), queue="dispatch", headers=schema).get(timeout=30) is None
        _in(alpha)
        assert cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=cadence_contact.pk)) == 1
        assert cadence_tick.apply_async(queue="dispatch", headers=schema).get(timeout=30) == 0
        tick.apply_async(queue="default").get(timeout=30)  # beat's tick skips the suspended tenant

        # Inbound: stored and answered, but held, not applied.
        wamid = meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=inbound_phone, text=f"oi {run}")

        def held_event() -> bool:
            connection.set_schema_to_public()
            event = WebhookEvent.objects.filter(event_id=f"msg:{wamid}").first()
            return bool(event and event.next_attempt_at == HELD_UNTIL and event.outcome == HELD_OUTCOME)

        wait_until(held_event, timeout=30, interval=0.3)
        assert WebhookEvent.objects.get(event_id=f"msg:{wamid}").processed_at is None

        _in(alpha)
        assert Message.objects.get(pk=held.pk).status == MessageStatus.QUEUED
        assert not Message.objects.filter(provider_message_id=wamid).exists()
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.RUNNING
        assert set(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
            RecipientStatus.PENDING
        }
        assert Enrollment.objects.get(cadence=cadence).steps_sent == 0
        assert not [m for m in list(meta_emulator.sent.values()) if m.get("to") in watched]
    finally:
        connection.set_schema_to_public()
        tenant_reactivate(tenant=alpha)

    def caught_up() -> bool:
        _in(alpha)
        return (
            Message.objects.get(pk=held.pk).status != MessageStatus.QUEUED
            and Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED
            and Enrollment.objects.get(cadence=cadence).steps_sent == 1
            and Message.objects.filter(provider_message_id=wamid, direction=Direction.INBOUND).exists()
        )

    wait_until(caught_up, timeout=60, interval=0.5)
    _in(alpha)
    sent = [str(m.get("to")) for m in list(meta_emulator.sent.values()) if m.get("to") in watched]
    assert sorted(sent) == sorted(watched)  # each once
    assert Message.objects.get(provider_message_id=wamid).body == f"oi {run}"
    connection.set_schema_to_public()
    assert WebhookEvent.objects.get(event_id=f"msg:{wamid}").outcome == "applied"
