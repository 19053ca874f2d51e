"""The ingest drain: applies stored webhook events to their tenants, in batches, exactly once.

Events are claimed with SELECT ... FOR UPDATE SKIP LOCKED, so several drains can run at once. Each is
applied inside a savepoint in its tenant's schema and marked processed in the same transaction. A status
for a message we do not know yet (its send is still being recorded) is retried a few times, then dropped.
A suspended tenant's events are kept unapplied (held) and applied when it is reactivated.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import DataError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from core import realtime
from crm.models import ConsentStatus
from crm.services import MEDIUM_OF_KIND, consent_record, contact_identity_rekey, contact_resolve
from inbox.coexistence import COEXISTENCE_EVENTS, coexistence_apply
from inbox.models import Channel
from inbox.providers import (
    Event,
    IdentityChange,
    InboundMessage,
    PayloadError,
    PreferenceUpdate,
    StatusUpdate,
    provider_class,
)
from inbox.selectors import channel_identity_scope
from inbox.services import inbound_apply, status_apply, statuses_apply
from intake.models import ChannelRoute, WebhookEvent
from intake.services import drain_enqueue, drain_flag_clear

logger = logging.getLogger(__name__)

BATCH = 500
MAX_DEFERRALS = 6
# A held event's due time: the drain never claims it; ingest_release_held makes it due again.
HELD_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)
HELD_OUTCOME = "held: workspace suspended"


def ingest_drain(*, time_budget_s: float = 50.0) -> int:
    """Apply pending events until none are left. When the time budget is spent with work left, hand over
    to a fresh drain (the pending flag stays set, so intake does not pile up more). Returns how many."""
    deadline = time.monotonic() + time_budget_s
    total = 0
    while True:
        done = drain_batch()
        total += done
        if done == 0:
            drain_flag_clear()
            done = drain_batch()  # anything stored after our last look and before the flag went away
            total += done
            if done == 0:
                return total
        if time.monotonic() > deadline:
            drain_enqueue(1)  # hand over to a fresh task: one for one, the others go on by themselves
            return total


def drain_batch(limit: int = BATCH) -> int:
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    now = timezone.now()
    with realtime.batched(), transaction.atomic():
        claimed = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(processed_at=None)
            .filter(Q(next_attempt_at=None) | Q(next_attempt_at__lte=now))
            .order_by("id")[:limit]
        )
        routes: dict[tuple[str, str], ChannelRoute | None] = {}
        channels: dict[tuple[int, int], Channel] = {}
        # Events that are only message statuses (most of them: three per message sent) are applied in bulk
        # per channel after the others; everything else one by one, each in its savepoint.
        statuses: dict[tuple[int, int], tuple[ChannelRoute, list[tuple[WebhookEvent, list[StatusUpdate]]]]] = {}
        for event in claimed:
            key = (event.route_kind, event.route_key)
            if key not in routes:
                routes[key] = (
                    ChannelRoute.objects.select_related("tenant").filter(kind=key[0], external_id=key[1]).first()
                )
            route = routes[key]
            only = _statuses_only(event, route, channels)
            if route is not None and only is not None:
                statuses.setdefault((route.tenant_id, route.channel_id), (route, []))[1].append((event, only))
            else:
                _apply_one(event, route, now, channels)
        for route, group in statuses.values():
            _apply_statuses(group, route, now, channels)
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        _events_settle(claimed)
    return len(claimed)


def _events_settle(claimed: list[WebhookEvent]) -> None:
    """Write the batch's outcomes in one UPDATE ... FROM unnest(arrays) (bulk_update's CASE per row costs
    more to build in Python than the drain spends applying the events)."""
    if not claimed:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {WebhookEvent._meta.db_table} AS w SET processed_at = v.processed_at, "  # noqa: S608 (our names)
            "outcome = v.outcome, attempts = v.attempts, next_attempt_at = v.next_attempt_at "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::int[], %s::timestamptz[]) "
            "AS v(id, processed_at, outcome, attempts, next_attempt_at) WHERE w.id = v.id",
            [
                [e.pk for e in claimed],
                [e.processed_at for e in claimed],
                [e.outcome for e in claimed],
                [e.attempts for e in claimed],
                [e.next_attempt_at for e in claimed],
            ],
        )


def _channel(route: ChannelRoute, channels: dict[tuple[int, int], Channel]) -> Channel:
    key = (route.tenant_id, route.channel_id)
    if key not in channels:
        channels[key] = Channel.objects.get(pk=route.channel_id)
    return channels[key]


def _statuses_only(
    event: WebhookEvent, route: ChannelRoute | None, channels: dict[tuple[int, int], Channel]
) -> list[StatusUpdate] | None:
    """The event's status updates when it holds nothing else (and its tenant is active), else None."""
    if route is None or not route.tenant.is_active:
        return None
    if getattr(connection, "schema_name", None) != route.tenant.schema_name:
        connection.set_tenant(route.tenant)  # type: ignore[attr-defined]
    try:
        parsed = provider_class(_channel(route, channels).kind).parse_event(event.payload)
    except Exception:  # read again, and judged, by _apply_one
        return None
    if not parsed or not all(isinstance(p, StatusUpdate) for p in parsed):
        return None
    return [p for p in parsed if isinstance(p, StatusUpdate)]


def _apply_statuses(
    group: list[tuple[WebhookEvent, list[StatusUpdate]]],
    route: ChannelRoute,
    now: datetime,
    channels: dict[tuple[int, int], Channel],
) -> None:
    """One channel's status-only events in one savepoint (statuses_apply); one by one if that fails."""
    if getattr(connection, "schema_name", None) != route.tenant.schema_name:
        connection.set_tenant(route.tenant)  # type: ignore[attr-defined]
    channel = _channel(route, channels)
    updates = [(channel, u) for _e, found in group for u in found]
    try:
        with transaction.atomic():
            results = statuses_apply(updates=updates)
    except Exception:
        logger.exception("bulk status apply of %d events failed in %s", len(group), route.tenant.schema_name)
        for event, _found in group:
            _apply_one(event, route, now, channels)
        return
    at = 0
    for event, found in group:
        mine, at = results[at : at + len(found)], at + len(found)
        _settle(event, mine, now)


def _settle(event: WebhookEvent, results: list[bool | None], now: datetime) -> None:
    """Mark an applied event: processed, or tried again shortly when its message is not known yet."""
    if None in results and event.attempts + 1 < MAX_DEFERRALS:
        event.attempts += 1
        event.next_attempt_at = now + timedelta(seconds=1 + event.attempts)
        return
    event.processed_at = now
    event.outcome = "applied" if any(results) else ("unknown message" if None in results else "no change")


def _apply_one(
    event: WebhookEvent, route: ChannelRoute | None, now: datetime, channels: dict[tuple[int, int], Channel]
) -> None:
    if route is None:
        event.processed_at, event.outcome = now, "no route: no channel has this number"
        return
    if not route.tenant.is_active:  # the route's tenant row is read fresh for every batch
        event.next_attempt_at, event.outcome = HELD_UNTIL, HELD_OUTCOME
        return
    if getattr(connection, "schema_name", None) != route.tenant.schema_name:
        connection.set_tenant(route.tenant)  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            channel = _channel(route, channels)
            results = [
                _apply_event(channel, parsed) for parsed in provider_class(channel.kind).parse_event(event.payload)
            ]
    except (PayloadError, ValidationError, DataError) as exc:
        # A malformed payload (or one our rows cannot hold) reads the same on every try: recorded, not retried.
        logger.warning("ingest of %s:%s refused: %s", event.provider, event.event_id, type(exc).__name__)
        event.processed_at, event.outcome = now, f"bad payload: {type(exc).__name__}"
        return
    except Exception as exc:
        logger.exception("ingest of %s:%s failed in %s", event.provider, event.event_id, route.tenant.schema_name)
        event.attempts += 1
        if event.attempts >= MAX_DEFERRALS:
            event.processed_at, event.outcome = now, f"error: {type(exc).__name__}"[:200]
        else:
            event.next_attempt_at = now + timedelta(seconds=5 * event.attempts)
        return
    _settle(event, results, now)


def _apply_event(channel: Channel, parsed: Event) -> bool | None:
    if isinstance(parsed, InboundMessage):
        return inbound_apply(channel=channel, event=parsed) is not None
    if isinstance(parsed, StatusUpdate):
        return status_apply(channel=channel, update=parsed)
    if isinstance(parsed, IdentityChange):
        rekeyed = contact_identity_rekey(
            scope=channel_identity_scope(channel),
            previous_bsuid=parsed.previous_user_id,
            bsuid=parsed.user_id,
            previous_parent_bsuid=parsed.previous_parent_user_id,
            parent_bsuid=parsed.parent_user_id,
            phone=parsed.phone,
        )
        return rekeyed is not None
    if isinstance(parsed, PreferenceUpdate):
        # By the phone when Meta gives one (wa_id), else by the BSUID alone.
        contact = contact_resolve(
            scope=channel_identity_scope(channel),
            phone=parsed.phone,
            bsuid=parsed.user_id,
            parent_bsuid=parsed.parent_user_id,
        )
        if contact is None:
            raise ValidationError("a preference without a phone or a user id")
        status = ConsentStatus.MARKETING_OPTED_OUT if parsed.marketing_opt_out else ConsentStatus.OPTED_IN
        source = "whatsapp:user_preferences:" + ("stop" if parsed.marketing_opt_out else "resume")
        consent_record(  # a "resume" lifts a marketing stop only, never a full STOP (crm orders by time)
            contact=contact,
            medium=MEDIUM_OF_KIND[channel.kind],
            status=status,
            source=source,
            at=parsed.timestamp,
            marketing_only=True,
        )
        return True
    if isinstance(parsed, COEXISTENCE_EVENTS):
        return coexistence_apply(channel=channel, event=parsed)
    return provider_class(channel.kind).apply_own_event(channel, parsed)


def pending_count() -> int:
    """Events waiting to be applied (not those held for a suspended tenant)."""
    if connection.schema_name != get_public_schema_name():  # type: ignore[attr-defined]
        connection.set_schema_to_public()  # type: ignore[attr-defined]
    return WebhookEvent.objects.filter(processed_at=None).exclude(next_attempt_at=HELD_UNTIL).count()


def ingest_release_held(*, tenant_id: int) -> int:
    """On reactivation: the tenant's held events (and any whose route is gone, which the drain closes)
    become due now. Returns how many; the caller kicks a drain."""
    routes = ChannelRoute.objects.filter(kind=OuterRef("route_kind"), external_id=OuterRef("route_key"))
    with schema_context(get_public_schema_name()):
        return (
            WebhookEvent.objects.filter(processed_at=None, next_attempt_at=HELD_UNTIL)
            .filter(Exists(routes.filter(tenant_id=tenant_id)) | ~Exists(routes))
            .update(next_attempt_at=None, outcome="")
        )
