"""The cadence tick as the task runs it: a backlog larger than one batch is worked off in one tick, and
the tick reports every step it sent."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns import cadences
from campaigns.cadences import cadence_enroll, cadence_save
from campaigns.models import EnrollmentStatus
from campaigns.tasks import cadence_tick
from crm.models import Contact
from crm.services import contact_get_or_create
from inbox.models import Channel, Message

pytestmark = pytest.mark.django_db


def test_a_backlog_is_worked_off_batch_after_batch(
    in_tenant_a: Any, channels: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cadences, "MAX_BATCH", 2)  # 5 due enrollments: batches of 2, 2 and 1
    cadence = cadence_save(
        name="Backlog",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"kind": "text", "body": "Oi!"}, {"kind": "text", "body": "Tudo bem?", "delay_minutes": 60}],
    )
    contacts = [contact_get_or_create(phone=f"+5511970{i:06d}") for i in range(5)]
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk__in=[c.pk for c in contacts]))
    assert cadence_tick() == 5
    enrollments = list(cadence.enrollments.all())
    assert [e.steps_sent for e in enrollments] == [1] * 5
    assert all(e.status == EnrollmentStatus.ACTIVE for e in enrollments)  # the second step waits an hour
    assert Message.objects.filter(conversation__contact__in=contacts, body="Oi!").count() == 5
    assert cadence_tick() == 0  # nothing else is due
