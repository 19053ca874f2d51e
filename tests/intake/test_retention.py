"""Raw provider events lose their payload after WEBHOOK_EVENT_RETENTION_DAYS; the (provider, event_id)
rows stay, so a replay of an old delivery is still refused."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from inbox.ingest import drain_batch
from intake.models import WebhookEvent
from intake.tasks import events_purge_task
from tests.messaging import inbound, meta_envelope, meta_messages_value, post_meta, store_meta

pytestmark = pytest.mark.django_db


def test_the_purge_is_scheduled_by_beat() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["intake-events-purge"]
    assert entry["task"] == events_purge_task.name == "intake.events_purge"
    assert settings.WEBHOOK_EVENT_RETENTION_DAYS == 30


def test_old_payloads_are_emptied_and_a_replay_is_still_refused(channels: dict[str, int]) -> None:
    old_id, recent_id, pending_id = (f"wamid.{uuid.uuid4().hex}" for _ in range(3))
    bodies: dict[str, Any] = {}
    for message_id in (old_id, recent_id):
        bodies[message_id] = meta_envelope(meta_messages_value(messages=[inbound("text", message_id)]))
        assert post_meta(bodies[message_id]).status_code == 200
    drain_batch()
    days = settings.WEBHOOK_EVENT_RETENTION_DAYS
    WebhookEvent.objects.filter(event_id=f"msg:{old_id}").update(
        processed_at=timezone.now() - timedelta(days=days, hours=1)
    )
    WebhookEvent.objects.filter(event_id=f"msg:{recent_id}").update(
        processed_at=timezone.now() - timedelta(days=days - 1)
    )
    # one not applied yet, however old, is never purged: its payload is still needed
    post_meta(meta_envelope(meta_messages_value(messages=[inbound("text", pending_id)])))
    WebhookEvent.objects.filter(event_id=f"msg:{pending_id}").update(received_at=timezone.now() - timedelta(days=90))

    assert events_purge_task() >= 1
    old = WebhookEvent.objects.get(provider="meta", event_id=f"msg:{old_id}")
    assert old.payload == {} and old.purged_at is not None
    assert WebhookEvent.objects.get(event_id=f"msg:{recent_id}").payload != {}
    assert WebhookEvent.objects.get(event_id=f"msg:{pending_id}").payload != {}
    assert events_purge_task() == 0  # nothing left to do: a second run changes nothing

    # the provider replays the old delivery: refused by its id, nothing new to apply (the intake's own
    # INSERT on the test's connection: the purge is not committed for another one to see)
    assert store_meta(bodies[old_id]) == 0
    assert WebhookEvent.objects.filter(provider="meta", event_id=f"msg:{old_id}").count() == 1
    old.refresh_from_db()
    assert old.payload == {} and old.processed_at is not None
