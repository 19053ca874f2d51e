"""Beat's periodic tasks, sent as beat sends them (by name, with the schedule's options, no tenant header)
to the real worker, and what each of them changes."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus
from campaigns.services import campaign_launch, campaign_save
from config.celery import app
from crm.models import Tag
from crm.services import contact_get_or_create
from emulators.meta import MetaEmulator
from inbox.ingest import MAX_DEFERRALS, drain_batch
from inbox.models import Channel, Message
from intake.models import ChannelRoute, WebhookEvent
from intake.services import drain_flag_clear
from tenants.models import Tenant
from tests.conftest import WA_PNID, WA_WABA, Worker
from tests.messaging import inbound
from tests.support import wait_until


def beat_send(task: str) -> Any:
    """What beat does for a schedule entry: send the task by name with the entry's options."""
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == task)
    return app.send_task(task, **entry.get("options", {}))


def test_template_sync_all_refreshes_every_waba(
    celery_worker: Worker, meta_emulator: MetaEmulator, tenants: Any, channels: Any, committed: Any
) -> None:
    from whatsapp.models import MessageTemplate

    name = f"beat_{uuid.uuid4().hex[:6]}"
    meta_emulator.templates.setdefault(WA_WABA, []).append(
        {
            "id": str(uuid.uuid4().int % 10**15),
            "name": name,
            "language": "pt_BR",
            "category": "UTILITY",
            "status": "APPROVED",
            "components": [{"type": "BODY", "text": "Oi {{1}}"}],
            "parameter_format": "POSITIONAL",
        }
    )
    assert beat_send("whatsapp.templates_sync_all").get(timeout=30) >= 1

    def synced() -> bool:
        connection.set_tenant(tenants[0])
        return MessageTemplate.objects.filter(waba_id=WA_WABA, name=name, status="APPROVED").exists()

    wait_until(synced, timeout=30, what="the template synced from the Graph emulator")


def test_campaigns_tick_starts_a_due_scheduled_campaign(
    app_server: str, celery_worker: Worker, tenants: Any, channels: Any, committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    tag = Tag.objects.create(name=f"beat-{uuid.uuid4().hex[:6]}")
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    contact_get_or_create(phone=phone, name="Agendada").tags.add(tag)
    campaign = campaign_launch(
        campaign=campaign_save(
            name=f"Beat {tag.name}",
            channel=Channel.objects.get(pk=channels["sms"]),
            audience={"tags": [tag.pk]},
            kind="text",
            body="Oi!",
            respect_quiet_hours=False,
            scheduled_at=timezone.now() + datetime.timedelta(hours=1),
        )
    )
    assert campaign.status == CampaignStatus.SCHEDULED
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now() - datetime.timedelta(seconds=1))
    assert beat_send("campaigns.tick").get(timeout=30) >= 1

    def done() -> bool:
        connection.set_tenant(alpha)
        return Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED

    wait_until(done, timeout=30, what="the scheduled campaign to run")
    connection.set_tenant(alpha)
    assert Message.objects.get(conversation__contact__phone=phone).provider_message_id


def test_ingest_sweep_wakes_a_drain_for_events_left_behind(
    celery_worker: Worker, tenants: Any, channels: Any, committed: Any
) -> None:
    wamid = f"wamid.sweep.{uuid.uuid4().hex}"
    phone = f"55119{uuid.uuid4().int % 10**8:08d}"
    connection.set_schema_to_public()
    WebhookEvent.objects.create(  # stored, but no drain was kicked (say the broker was down then)
        provider="meta",
        event_id=f"msg:{wamid}",
        route_kind="whatsapp_cloud",
        route_key=WA_PNID,
        payload={"kind": "message", "message": inbound("text", wamid, sender=phone), "contacts": []},
    )
    drain_flag_clear()
    beat_send("inbox.ingest_sweep").get(timeout=30)

    def applied() -> bool:
        connection.set_tenant(tenants[0])
        return Message.objects.filter(provider_message_id=wamid).exists()

    wait_until(applied, timeout=30, what="the left-behind event applied")


@pytest.mark.django_db
def test_an_event_that_keeps_failing_is_given_up_after_its_retries(tenant_a: Tenant) -> None:
    connection.set_schema_to_public()
    ChannelRoute.objects.create(kind="whatsapp_cloud", external_id="100000000000666", tenant=tenant_a, channel_id=0)
    event = WebhookEvent.objects.create(
        provider="meta",
        event_id=f"msg:wamid.fail.{uuid.uuid4().hex}",
        route_kind="whatsapp_cloud",
        route_key="100000000000666",
        payload={"kind": "message", "message": inbound("text", "wamid.fail"), "contacts": []},
    )
    for attempt in range(1, MAX_DEFERRALS + 1):
        WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=None)  # due now
        drain_batch()
        connection.set_schema_to_public()
        event.refresh_from_db()
        assert event.attempts == attempt
        assert (event.processed_at is None) == (attempt < MAX_DEFERRALS)
    assert event.outcome == "error: DoesNotExist"  # the channel is gone: recorded, not retried forever
