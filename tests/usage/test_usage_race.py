"""The limit's lock: senders on their own connections racing for the month's last messages, and people
adding contacts at once, never pass the plan's limit. Committed for real (each thread has its own
transaction), undone after."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, connections

from crm.models import Contact
from crm.services import contact_get_or_create
from inbox.models import Message
from inbox.services import message_room, message_send, outbound_pending
from tenants import usage
from tenants.models import Metric, Tenant
from tests.messaging import open_conversation
from tests.usage.support import plan_give


def _race(tenant: Tenant, items: list[Any], work: Callable[[Any], object], done: str) -> list[str]:
    """`work(item)` for every item at once, each in a thread of its own (its own connection and
    transaction) released by one barrier; each thread's outcome: `done`, or the refusal's code."""
    barrier = threading.Barrier(len(items))
    outcomes: list[str] = []

    def run(item: Any) -> None:
        try:
            connection.set_tenant(tenant)
            barrier.wait(timeout=10)
            work(item)
            outcomes.append(done)
        except ValidationError as exc:
            outcomes.append(exc.code or "")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_senders_racing_for_the_last_messages_of_the_month_never_pass_the_limit(
    tenants: tuple[Tenant, Tenant], channels: dict[str, int], committed: Any
) -> None:
    """Eight threads, each on its own connection and transaction, send at once with room for two: the
    limit's lock lets exactly two through (without it, all eight see room before any commits)."""
    alpha = tenants[0]
    connection.set_tenant(alpha)
    conversations = [open_conversation(channels["sms"], f"+5511981{uuid.uuid4().int % 10**6:06d}") for _ in range(8)]
    room_before = message_room(channel_kind="sms_twilio")
    assert room_before is None  # the suite's tenants are unlimited
    connection.set_schema_to_public()
    already = usage.usage_month(metric=Metric.MESSAGES_SMS, tenant=alpha)
    connection.set_tenant(alpha)
    plan_give(alpha, messages_sms=already + outbound_pending(channel_kind="sms_twilio") + 2)
    try:
        outcomes = _race(
            alpha,
            conversations,
            lambda conversation: message_send(conversation=conversation, body="o último do mês", dispatch=False),
            done="queued",
        )
        assert sorted(outcomes) == ["queued"] * 2 + [usage.LIMIT_CODE] * 6, outcomes
    finally:
        connection.set_tenant(alpha)
        Message.objects.filter(conversation__in=conversations).delete()  # never sent by a later worker
        connection.set_schema_to_public()
        Tenant.objects.filter(pk=alpha.pk).update(plan=None)


def test_people_adding_contacts_at_once_never_pass_the_plans_number(
    tenants: tuple[Tenant, Tenant], committed: Any
) -> None:
    """Six threads add six new contacts at once with room for two: exactly two are made."""
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phones = [f"+5511982{uuid.uuid4().int % 10**6:06d}" for _ in range(6)]
    plan_give(alpha, max_contacts=Contact.objects.count() + 2)
    try:
        outcomes = _race(alpha, phones, lambda p: contact_get_or_create(phone=p, name="Na corrida"), done="made")
        assert sorted(outcomes) == ["made"] * 2 + [usage.LIMIT_CODE] * 4, outcomes
        assert Contact.objects.filter(phone__in=phones).count() == 2
    finally:
        connection.set_tenant(alpha)
        Contact.objects.filter(phone__in=phones).delete()
        connection.set_schema_to_public()
        Tenant.objects.filter(pk=alpha.pk).update(plan=None)
