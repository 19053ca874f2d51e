"""Storing verified webhook events, and waking the ingest worker."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.redis import redis_client
from intake.models import ChannelRoute

DRAIN_FLAG = "intake:drain-pending"
DRAIN_TASK = "inbox.ingest_drain"


@dataclass(frozen=True)
class RawEvent:
    event_id: str
    route_kind: str
    route_key: str
    payload: dict[str, Any]


def _storable_text(text: str) -> str:
    """PostgreSQL text and jsonb hold neither U+0000 nor half of a UTF-16 pair (JSON can escape both):
    the first is dropped, the second becomes U+FFFD, so a signed payload is stored instead of failing."""
    text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return text


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {_storable_text(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _bounded_event_id(event_id: str) -> str:
    """Event ids fit their column; a longer one (only a malformed payload has one) becomes its digest,
    so a redelivery still dedupes."""
    clean = _storable_text(event_id)
    return clean if len(clean) <= 200 else "sha256:" + hashlib.sha256(clean.encode()).hexdigest()


def insert_statement(events: list[RawEvent], provider: str) -> tuple[str, list[Any]]:
    """One INSERT ... ON CONFLICT DO NOTHING for a batch (shared by the sync and the async intake)."""
    rows = [
        (
            provider,
            _bounded_event_id(e.event_id),
            e.route_kind,
            # A key longer than any route's can match no channel: stored without one ("no route").
            _storable_text(e.route_key) if len(e.route_key) <= 120 else "",
            json.dumps(_storable(e.payload), allow_nan=False),
        )
        for e in events
    ]
    placeholders = ",".join(["(%s,%s,%s,%s,%s::jsonb,now(),0,'')"] * len(rows))
    # Only "%s" placeholders are joined into the statement; every value is a parameter.
    sql = (
        "INSERT INTO public.intake_webhookevent"  # noqa: S608
        " (provider, event_id, route_kind, route_key, payload, received_at, attempts, outcome)"
        " VALUES " + placeholders + " ON CONFLICT (provider, event_id) DO NOTHING"
    )
    return sql, [value for row in rows for value in row]


# A statement holds at most 65535 parameters (5 a row): one history webhook can carry thousands of messages.
INSERT_BATCH = 5000


def insert_batches(events: list[RawEvent]) -> list[list[RawEvent]]:
    return [events[start : start + INSERT_BATCH] for start in range(0, len(events), INSERT_BATCH)]


def events_store(*, provider: str, events: list[RawEvent]) -> int:
    """Insert each event once (a redelivery is a no-op) and make sure a drain is on its way.
    One round trip per INSERT_BATCH events; returns how many were new."""
    if not events:
        return 0
    inserted = 0
    with connection.cursor() as cursor:
        for batch in insert_batches(events):
            cursor.execute(*insert_statement(batch, provider))
            inserted += cursor.rowcount
    if inserted:
        drain_kick()
    return inserted


def drain_kick() -> None:
    """Enqueue a drain unless one is already pending (the flag is cleared by the drain before its last look)."""
    if redis_client().set(DRAIN_FLAG, "1", nx=True, ex=60):
        drain_enqueue()


def drain_enqueue(count: int | None = None) -> None:
    """Start drains; several can work at once (they claim events with SKIP LOCKED)."""
    from config.celery import app

    for _ in range(count or settings.INGEST_PARALLEL_DRAINS):
        app.send_task(DRAIN_TASK, queue="ingest", headers={"_schema_name": "public"})


def drain_flag_clear() -> None:
    redis_client().delete(DRAIN_FLAG)


class RouteTaken(Exception):
    """The external id is already routed to another channel (of this tenant or another one)."""


def route_register(*, kind: str, external_id: str, tenant_id: int, channel_id: int) -> None:
    """Route a provider's external id to a channel. A route held by another channel is never moved: the
    unique constraint decides between two concurrent claims, and the loser gets RouteTaken."""
    if not external_id:
        raise ValueError(f"empty external id for route kind {kind!r}")
    with transaction.atomic():
        route, created = ChannelRoute.objects.get_or_create(
            kind=kind, external_id=external_id, defaults={"tenant_id": tenant_id, "channel_id": channel_id}
        )
    if not created and (route.tenant_id, route.channel_id) != (tenant_id, channel_id):
        raise RouteTaken(f"{kind}:{external_id}")


def route_remove(*, kinds: list[str], tenant_id: int, channel_id: int) -> None:
    """Remove the routes of one owner: the kinds name which table of ids (channels, voice settings...) the
    owner id refers to, so a channel never removes the voice route that happens to share its id."""
    ChannelRoute.objects.filter(kind__in=kinds, tenant_id=tenant_id, channel_id=channel_id).delete()


def route_lookup(*, kind: str, external_id: str) -> ChannelRoute | None:
    if "\x00" in external_id:  # no route has one, and PostgreSQL refuses it as a parameter (a 500)
        return None
    return ChannelRoute.objects.select_related("tenant").filter(kind=kind, external_id=external_id).first()


def events_erase_mentioning(*, tenant_id: int, needles: list[str]) -> int:
    """Empty the stored payloads, on this tenant's routes, that contain any of `needles` (a person's
    phone digits, as providers write them). The rows stay, so a replay is still refused; one not
    applied yet is closed, so nothing is made again from it. Returns how many were emptied."""
    patterns = [f"%{n}%" for n in needles if n and n.isalnum()]  # digits and ids only: no LIKE wildcards
    if not patterns:
        return 0
    sql = (
        "UPDATE public.intake_webhookevent e SET payload = '{}'::jsonb,"
        " processed_at = COALESCE(e.processed_at, now()), next_attempt_at = NULL, outcome = 'erased'"
        " FROM public.intake_channelroute r"
        " WHERE r.tenant_id = %s AND e.route_kind = r.kind AND e.route_key = r.external_id"
        " AND e.payload::text LIKE ANY(%s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, patterns])
        return int(cursor.rowcount)


PURGE_BATCH = 5000


def events_purge(*, retention_days: int | None = None) -> int:
    """Empty the payloads of events applied more than `retention_days` ago (WEBHOOK_EVENT_RETENTION_DAYS),
    in batches. The rows and their (provider, event_id) stay: a replay is still refused. Returns how many."""
    days = settings.WEBHOOK_EVENT_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    sql = (
        "UPDATE public.intake_webhookevent SET payload = '{}'::jsonb, purged_at = now() WHERE id IN ("
        " SELECT id FROM public.intake_webhookevent WHERE processed_at IS NOT NULL AND purged_at IS NULL"
        " AND processed_at < %s ORDER BY processed_at LIMIT %s FOR UPDATE SKIP LOCKED)"
    )
    total = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, PURGE_BATCH])
            done = int(cursor.rowcount)
        total += done
        if done < PURGE_BATCH:
            return total
