"""Keeping the rollups current from the domain events.

A subscriber only notes which hours changed, in Redis under the tenant's prefix (one SADD, no database
work on the announcer's path), and makes sure one refresh task is on its way. The task rebuilds those
hours from the raw rows (analytics.rollups) and pushes today's counters to the dashboards that are open.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context

from core import events, realtime
from core.redis import redis_client

from .models import Resolution
from .rollups import KINDS, contained_sql, hour_floor, hours_rebuild

logger = logging.getLogger(__name__)

REFRESH_DELAY_S = 1.0  # events of one burst are gathered this long into one refresh
LIVE_EVENT = "analytics.today"


def _key(schema_name: str, what: str) -> str:
    return f"t.{schema_name}.analytics.{what}"


def _hour_token(kind: str, moment: datetime) -> str:
    return f"{kind}|{hour_floor(moment).isoformat()}"


def hours_mark(
    schema_name: str,
    tokens: list[str],
    message_ids: list[int] | None = None,
    conversation_ids: list[int] | None = None,
) -> None:
    """Note changed hours (and messages or conversations whose creation hour is looked up at refresh)
    and schedule one refresh."""
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    if tokens:
        pipe.sadd(_key(schema_name, "dirty"), *tokens)
    if message_ids:
        pipe.sadd(_key(schema_name, "messages"), *message_ids)
    if conversation_ids:
        pipe.sadd(_key(schema_name, "conversations"), *conversation_ids)
    pipe.set(_key(schema_name, "scheduled"), "1", nx=True, ex=60)
    results = pipe.execute()
    if results[-1]:  # nobody has a refresh on its way: send one
        from analytics.tasks import rollups_refresh

        rollups_refresh.apply_async(countdown=REFRESH_DELAY_S, queue="default", headers={"_schema_name": schema_name})


def _created_hour(payload: dict[str, Any]) -> datetime:
    created = parse_datetime(str(payload.get("created_at") or "")) or timezone.now()
    return created


def _message_created(schema_name: str, payload: dict[str, Any]) -> None:
    if payload.get("direction") == "note":
        return
    at = _created_hour(payload)
    tokens = [_hour_token("msg", at), _hour_token("conv", at)]  # a first message opens a conversation
    if payload.get("direction") == "out":
        tokens.append(_hour_token("resp", at))
    hours_mark(schema_name, tokens)


def _message_statuses(schema_name: str, payloads: list[dict[str, Any]]) -> None:
    ids = [p["id"] for p in payloads if isinstance(p.get("id"), int)]
    if ids:
        hours_mark(schema_name, [], ids)  # one round trip for the batch


def _conversation_updated(schema_name: str, payload: dict[str, Any]) -> None:
    if payload.get("status") == "resolved":
        with schema_context(schema_name):  # handlers run after the commit, in whatever schema is active
            resolution_record(conversation_id=int(payload["conversation_id"]))
    # the assignee counts the conversation in the hour it was opened: that hour changes too
    hours_mark(schema_name, [_hour_token("conv", timezone.now())], conversation_ids=[int(payload["conversation_id"])])


def _now_changed(kind: str) -> events.Handler:
    def handler(schema_name: str, payload: dict[str, Any]) -> None:
        hours_mark(schema_name, [_hour_token(kind, timezone.now())])

    handler.__qualname__ = f"analytics.{kind}_changed"
    return handler


def _call_ended(schema_name: str, payload: dict[str, Any]) -> None:
    from voice.models import Call

    with schema_context(schema_name):  # handlers run after the commit, in whatever schema is active
        calls = Call.objects.filter(pk=int(payload.get("call_id") or 0))
        created = calls.values_list("created_at", flat=True).first()
    hours_mark(schema_name, [_hour_token("call", created or timezone.now())])


def subscribe() -> None:
    events.subscribe(events.MESSAGE_CREATED, _message_created)
    events.subscribe_many(events.MESSAGE_STATUS, _message_statuses)
    events.subscribe(events.CONVERSATION_UPDATED, _conversation_updated)
    events.subscribe(events.CALL_ENDED, _call_ended)
    events.subscribe(events.CALL_ANALYZED, _call_ended)  # sentiment, success and cost come with the analysis
    for name in (events.LEAD_STAGE_ENTERED, events.BOARD_CHANGED):
        events.subscribe(name, _now_changed("lead"))
    for name in (events.CONTACT_OPTED_OUT, events.CONTACT_OPTED_IN):
        events.subscribe(name, _now_changed("optout"))


def resolution_record(*, conversation_id: int, at: datetime | None = None) -> Resolution | None:
    """Log that the conversation was resolved now, with the member who held it."""
    from inbox.models import Conversation

    found = Conversation.objects.filter(pk=conversation_id).values("channel_id", "assignee_id", "status").first()
    if found is None or found["status"] != "resolved":
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {contained_sql('%(id)s')}", {"id": conversation_id})
        contained = bool(cursor.fetchone()[0])
    return Resolution.objects.create(
        conversation_id=conversation_id,
        channel_id=found["channel_id"],
        agent_id=found["assignee_id"],
        resolved_at=at or timezone.now(),
        contained=contained,
    )


def _take(schema_name: str, what: str) -> list[bytes]:
    """Everything in the set, atomically (a member added meanwhile waits for the next refresh)."""
    client = redis_client()
    key = _key(schema_name, what)
    pipe = client.pipeline(transaction=True)
    pipe.smembers(key)
    pipe.delete(key)
    members, _deleted = pipe.execute()
    return list(members)


def rollups_refresh() -> dict[str, int]:
    """Rebuild the hours noted since the last refresh, in the connection's schema; push today's numbers.
    Returns how many hours of each kind were rebuilt."""
    from inbox.models import Conversation, Message

    schema_name = connection.schema_name  # type: ignore[attr-defined]
    redis_client().delete(_key(schema_name, "scheduled"))  # events from now on schedule the next refresh
    by_kind: dict[str, set[datetime]] = {kind: set() for kind in KINDS}
    for raw in _take(schema_name, "dirty"):
        kind, _sep, iso = raw.decode().partition("|")
        moment = parse_datetime(iso)
        if kind in by_kind and moment is not None:
            by_kind[kind].add(moment)
    message_ids = [int(raw) for raw in _take(schema_name, "messages")]
    if message_ids:
        for created in Message.objects.filter(pk__in=message_ids).values_list("created_at", flat=True).distinct():
            by_kind["msg"].add(hour_floor(created))
    conversation_ids = [int(raw) for raw in _take(schema_name, "conversations")]
    if conversation_ids:
        opened = Conversation.objects.filter(pk__in=conversation_ids).values_list("created_at", flat=True)
        by_kind["conv"].update(hour_floor(created) for created in opened)
    rebuilt = {kind: hours_rebuild(kind, hours) for kind, hours in by_kind.items() if hours}
    if rebuilt:
        today_push(schema_name)
    return rebuilt


def rollups_recent() -> dict[str, int]:
    """The current and previous hour of every kind again (beat): a safety net for a lost event."""
    now = timezone.now()
    hours = [hour_floor(now), hour_floor(now) - timedelta(hours=1)]
    return {kind: hours_rebuild(kind, hours) for kind in KINDS}


def today_push(schema_name: str) -> None:
    """Today's counters to the managers' sockets (agents do not see the dashboard)."""
    from analytics.selectors import today_counters

    realtime.push(schema_name, realtime.MANAGERS_TOPIC, LIVE_EVENT, today_counters())
