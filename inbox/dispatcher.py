"""The dispatcher: the one path every outbound message takes (campaigns, cadence steps, retries, agent
replies, bots). No Celery task per message: the work is the message row itself (queued, with a due
`next_attempt_at`), claimed in batches with SKIP LOCKED by a runner that sends many requests at once over
one pooled aiohttp session and writes the results back in bulk.

    message_send ──INSERT queued──┐        campaign builder (bulk INSERT, overlaps the sends)
                                  ▼                 │
                   inbox_message (queued, next_attempt_at) ◄── retries: backoff + full jitter
                                  │ claim: UPDATE … FOR UPDATE SKIP LOCKED (claimed_by, claimed_at)
                                  ▼
          runner (lease + heartbeat in Redis, several per channel) ── token bucket (Redis, per channel)
                                  │ in-flight set in Redis, written before the requests leave
                                  ▼
                    aiohttp, N requests in flight (N from the rate and the measured latency)
                                  │ results flushed in bulk (UPDATE … FROM VALUES) every 100 ms
                                  ▼
                 sent / queued again (retryable) / failed / unknown ──► listeners (campaign recipients)

Crash safety: a runner's lease and `alive` key expire LEASE_S after it stops beating. `recover()` (run by
every runner at start and by the beat's dispatch_ensure) gives a dead runner's claimed messages back to the
queue, except those whose request may have left (in its in-flight set): those become `unknown`, shown and
never sent again blindly. So a crash costs at most the in-flight window in `unknown`, and nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import queue
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core import events, ratelimit, realtime
from core.redis import redis_async_client, redis_client
from crm.models import ConsentStatus, ContactConsent
from crm.services import MEDIUM_OF_KIND, consent_record
from inbox.models import Channel, Direction, Message, MessageStatus
from inbox.providers import ChannelProvider, ErrorKind, OutboundMessage, ProviderError, SendResult, provider_for
from tenants import usage
from tenants.selectors import tenant_is_active

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SEND_ATTEMPTS = 8
LEASE_S = 10.0  # a runner that has not beaten for this long is dead
HEARTBEAT_S = 2.0
BACKOFF_CAP_S = 900.0
DEFAULT_BACKOFF_BASE_S = 1.0
# WhatsApp's pair rate: to one phone, one message every 6 s on average, bursts of up to 45 (error 131056).
PAIR_RATE_PER_S = 1 / 6
PAIR_BURST = 45
UNLIMITED = 10**6  # a channel rate at or above this is not bucketed
FLUSH_EVERY_S = 0.1
IDLE_EXIT_S = 2.0  # a runner with nothing due (and nothing due soon) leaves after this
LATENCY_WINDOW = 200  # answers per window of the latency floor
LINGER_S = 15.0  # ... but stays while something becomes due within this


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


# --- hooks: what other apps add to the sending path (registered in their AppConfig.ready) -----------

QuietOpening = Callable[[], "datetime.datetime | None"]
Builder = Callable[[int, int], int]  # (channel id, how many at most) -> messages built
Listener = Callable[[list[tuple[int, str, str]]], object]  # [(message id, status, error code)]

_quiet_opening: list[QuietOpening] = []
_builders: list[Builder] = []
_listeners: list[Listener] = []


def register(
    *, quiet_opening: QuietOpening | None = None, builder: Builder | None = None, listener: Listener | None = None
) -> None:
    if quiet_opening is not None and quiet_opening not in _quiet_opening:
        _quiet_opening.append(quiet_opening)
    if builder is not None and builder not in _builders:
        _builders.append(builder)
    if listener is not None and listener not in _listeners:
        _listeners.append(listener)


def statuses_changed(changes: list[tuple[int, str, str]]) -> None:
    """Tell the listeners (campaign recipients) that these messages changed status."""
    if not changes:
        return
    for listener in _listeners:
        listener(changes)


def _quiet_now() -> datetime.datetime | None:
    for hook in _quiet_opening:
        opening = hook()
        if opening is not None:
            return opening
    return None


# --- retry policy -------------------------------------------------------------------------------


def backoff_delay(attempt: int, base: float | None, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform over [0, min(cap, base * 2^(attempt-1))]."""
    ceiling = min(BACKOFF_CAP_S, (base or DEFAULT_BACKOFF_BASE_S) * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0, ceiling)


def retry_delay(exc: ProviderError, attempt: int) -> float | None:
    """Seconds until the next try, or None when the error is final (permanent, unknown, or tried enough)."""
    if exc.kind != ErrorKind.RETRYABLE or attempt >= MAX_SEND_ATTEMPTS:
        return None
    if exc.retry_after is not None:  # the provider said when (Twilio's Retry-After, on this very answer)
        return float(exc.retry_after)
    return backoff_delay(attempt, exc.backoff_base)


# --- the work -------------------------------------------------------------------------------------


@dataclass
class Job:
    id: int
    conversation_id: int
    contact_id: int
    attempts: int
    outbound: OutboundMessage


@dataclass
class Outcome:
    id: int
    status: str  # sent | queued (again) | failed | unknown
    provider_message_id: str | None = None
    error_code: str = ""
    error_text: str = ""
    next_attempt_at: datetime.datetime | None = None
    given_back: bool = False  # put back without a request: the attempt does not count
    opted_out: str = ""
    conversation_id: int = 0
    contact_id: int = 0


def _outbound(message: Message) -> OutboundMessage:
    from crm.selectors import contact_bsuid
    from inbox.selectors import channel_identity_scope

    media_bytes = None
    if message.media:
        with message.media.open("rb") as fh:
            media_bytes = fh.read()
    contact = message.conversation.contact
    phone = contact.phone if contact.phone and not contact.phone.startswith("erased:") else ""
    # To the phone when known (Meta recommends it); else to the BSUID of this channel's portfolio.
    recipient = "" if phone else contact_bsuid(contact, channel_identity_scope(message.channel))
    return OutboundMessage(
        to=phone,
        recipient=recipient,
        type=message.type,
        body=message.body,
        media_url=message.media_url,
        media_bytes=media_bytes,
        media_mime=message.media_mime,
        media_filename=message.media_filename,
        template_name=message.template_name,
        template_language=message.template_language,
        template_variables=message.template_variables,
        payload=message.payload,
        reply_to=message.reply_to_provider_id,
        tracking=str(message.pk),
    )


_CLAIMED_COLUMNS = (
    "id",
    "conversation_id",
    "attempts",
    "is_marketing",
    "hold_quiet_hours",
    "type",
    "body",
    "media",
    "media_url",
    "media_mime",
    "media_filename",
    "template_name",
    "template_language",
    "template_variables",
    "payload",
    "reply_to_provider_id",
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _outbound_row(row: dict[str, Any]) -> OutboundMessage:
    """_outbound from the claimed columns (a phone known, no stored file)."""
    return OutboundMessage(
        to=row["phone"],
        recipient="",
        type=row["type"],
        body=row["body"],
        media_url=row["media_url"],
        media_bytes=None,
        media_mime=row["media_mime"],
        media_filename=row["media_filename"],
        template_name=row["template_name"],
        template_language=row["template_language"],
        template_variables=_json(row["template_variables"]),
        payload=_json(row["payload"]),
        reply_to=row["reply_to_provider_id"],
        tracking=str(row["id"]),
    )


def claim(
    *, channel: Channel, runner_id: str, limit: int, only_ids: list[int] | None = None
) -> tuple[list[Job], list[Outcome]]:
    """Claim up to `limit` due messages of the channel for this runner, then check each again as of now:
    consent (marketing), quiet hours (automated sends), the recipient's pair rate. Returns the jobs to
    send and the outcomes of those that may not go now (given back with a due time, or final).

    One statement claims and returns what a send needs (the message's columns and its contact's phone):
    no model instances on this path, except for the rare message with a stored file or a contact without
    a phone (read through the ORM, as _outbound always did)."""
    from crm.models import Contact
    from inbox.models import Conversation

    now = timezone.now()
    table = Message._meta.db_table
    where = "m.status = 'queued' AND m.direction = 'out' AND m.channel_id = %s"
    params: list[Any] = [channel.pk]
    if only_ids is not None:
        where += " AND m.id = ANY(%s)"
        params.append(only_ids)
    else:
        where += " AND m.next_attempt_at <= %s"
        params.append(now)
    returning = ", ".join(f"m.{c}" for c in _CLAIMED_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"WITH picked AS (SELECT m.id FROM {table} m WHERE {where} "  # noqa: S608 (names are ours)
            "ORDER BY m.next_attempt_at, m.id LIMIT %s FOR UPDATE SKIP LOCKED), "
            f"claimed AS (UPDATE {table} m SET status = 'sending', claimed_at = %s, claimed_by = %s, "
            f"attempts = m.attempts + 1 FROM picked WHERE m.id = picked.id RETURNING {returning}) "
            f"SELECT claimed.*, c.contact_id, ct.phone FROM claimed "
            f"JOIN {Conversation._meta.db_table} c ON c.id = claimed.conversation_id "
            f"JOIN {Contact._meta.db_table} ct ON ct.id = c.contact_id ORDER BY claimed.id",
            [*params, limit, now, runner_id],
        )
        names = [*_CLAIMED_COLUMNS, "contact_id", "phone"]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if not rows:
        return [], []
    medium = MEDIUM_OF_KIND[channel.kind]
    marketing_contacts = [r["contact_id"] for r in rows if r["is_marketing"]]
    refused = (
        dict(
            ContactConsent.objects.filter(contact_id__any=marketing_contacts, medium=medium)
            .exclude(status=ConsentStatus.OPTED_IN)
            .values_list("contact_id", "status")
        )
        if marketing_contacts
        else {}
    )
    quiet = _quiet_now() if any(r["hold_quiet_hours"] for r in rows) else None
    # A stored file to read, or no phone (the BSUID's lookup): the ORM's message, as before.
    odd = [r["id"] for r in rows if r["media"] or not r["phone"] or r["phone"].startswith("erased:")]
    loaded = (
        {m.pk: m for m in Message.objects.filter(pk__in=odd).select_related("conversation__contact", "channel")}
        if odd
        else {}
    )
    jobs: list[Job] = []
    held: list[Outcome] = []
    for row in rows:
        contact_id = row["contact_id"]
        base: dict[str, Any] = {"conversation_id": row["conversation_id"], "contact_id": contact_id}
        if row["is_marketing"] and contact_id in refused:
            held.append(
                Outcome(
                    row["id"],
                    MessageStatus.FAILED,
                    error_code="opted_out",
                    error_text="The contact opted out before the send.",
                    **base,
                )
            )
        elif row["hold_quiet_hours"] and quiet is not None:
            held.append(Outcome(row["id"], MessageStatus.QUEUED, next_attempt_at=quiet, given_back=True, **base))
        else:
            message = loaded.get(row["id"])
            outbound = _outbound(message) if message is not None else _outbound_row(row)
            jobs.append(Job(row["id"], row["conversation_id"], contact_id, row["attempts"], outbound))
    if channel.kind.startswith("whatsapp") and jobs:
        waits = ratelimit.pair_take(
            [f"{_schema()}:pair:{channel.pk}:{job.outbound.to}" for job in jobs],
            rate_per_s=PAIR_RATE_PER_S,
            burst=PAIR_BURST,
        )
        allowed = []
        for job, wait in zip(jobs, waits, strict=True):
            if wait > 0:
                held.append(
                    Outcome(
                        job.id,
                        MessageStatus.QUEUED,
                        next_attempt_at=now + datetime.timedelta(seconds=wait),
                        given_back=True,
                        conversation_id=job.conversation_id,
                        contact_id=job.contact_id,
                    )
                )
            else:
                allowed.append(job)
        jobs = allowed
    return jobs, held


def outcome_of(job: Job, result: SendResult | ProviderError, channel: Channel) -> Outcome:
    base: dict[str, Any] = {"conversation_id": job.conversation_id, "contact_id": job.contact_id}
    if isinstance(result, SendResult):
        return Outcome(job.id, MessageStatus.SENT, provider_message_id=result.provider_message_id, **base)
    exc = result
    text = exc.message[:500]
    if exc.code == "131056":  # too fast to this phone: nothing more to it for a while, whoever sends
        ratelimit.pair_penalize(
            f"{_schema()}:pair:{channel.pk}:{job.outbound.to}",
            seconds=backoff_delay(job.attempts, exc.backoff_base) + 1 / PAIR_RATE_PER_S,
        )
    delay = retry_delay(exc, job.attempts)
    if delay is not None:
        due = timezone.now() + datetime.timedelta(seconds=delay)
        return Outcome(job.id, MessageStatus.QUEUED, error_code=exc.code, error_text=text, next_attempt_at=due, **base)
    status = MessageStatus.UNKNOWN if exc.kind == ErrorKind.UNKNOWN else MessageStatus.FAILED
    return Outcome(job.id, status, error_code=exc.code, error_text=text, opted_out=exc.opted_out, **base)


def record(outcomes: list[Outcome], *, runner_id: str, channel: Channel) -> None:
    """Write a batch of outcomes in one statement (only rows this runner still holds), then tell the
    listeners, the consent book and the live views."""
    if not outcomes:
        return
    now = timezone.now()
    # One array per column through unnest: a statement text that is the same for every batch size.
    columns: list[list[Any]] = [
        [o.id for o in outcomes],
        [o.status for o in outcomes],
        [o.provider_message_id for o in outcomes],
        [o.error_code for o in outcomes],
        [o.error_text for o in outcomes],
        [o.next_attempt_at for o in outcomes],
        [1 if o.given_back else 0 for o in outcomes],
    ]
    table = Message._meta.db_table
    with realtime.batched(), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS m SET status = v.status, "  # noqa: S608 (names are ours, values parameters)
                "provider_message_id = COALESCE(v.pid, m.provider_message_id), "
                "sent_at = CASE WHEN v.status = 'sent' THEN %s ELSE m.sent_at END, "
                "failed_at = CASE WHEN v.status = 'failed' THEN %s ELSE m.failed_at END, "
                "error_code = CASE WHEN v.code = '' THEN m.error_code ELSE v.code END, "
                "error_text = CASE WHEN v.code = '' THEN m.error_text ELSE v.text END, "
                "next_attempt_at = v.due, attempts = m.attempts - v.back, claimed_by = '' "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], "
                "%s::int[]) AS v(id, status, pid, code, text, due, back) "
                "WHERE m.id = v.id AND m.status = 'sending' AND m.claimed_by = %s RETURNING m.id",
                [now, now, *columns, runner_id],
            )
            written = {row[0] for row in cursor.fetchall()}
        done = [o for o in outcomes if o.id in written]
        payloads: list[dict[str, Any]] = []
        for o in done:
            if o.opted_out:
                from crm.models import Contact

                consent_record(
                    contact=Contact.objects.get(pk=o.contact_id),
                    medium=MEDIUM_OF_KIND[channel.kind],
                    status=ConsentStatus.OPTED_OUT if o.opted_out == "all" else ConsentStatus.MARKETING_OPTED_OUT,
                    source=f"provider-error:{o.error_code}",
                )
            if o.status != MessageStatus.QUEUED:
                if o.status != MessageStatus.SENT:
                    logger.warning("message %s %s: %s %s", o.id, o.status, o.error_code, o.error_text)
                payload: dict[str, Any] = {"id": o.id, "conversation_id": o.conversation_id, "status": o.status}
                if o.error_code:
                    payload.update(error_code=o.error_code, error_text=o.error_text)
                payloads.append(payload)
        sent = sum(1 for o in done if o.status == MessageStatus.SENT)
        if sent and channel.kind in usage.MESSAGES_OF_KIND:  # metered where the send is recorded
            usage.usage_add(metric=usage.MESSAGES_OF_KIND[channel.kind], amount=sent)
        events.announce_many(events.MESSAGE_STATUS, _schema(), payloads)  # the batch's handlers at once
        statuses_changed([(o.id, o.status, o.error_code) for o in done if o.status != MessageStatus.QUEUED])
        _credentials_alert(channel, done)


# The provider said the channel's credentials are no good (Meta 190: token invalid or expired; Twilio
# 20003: authentication error): every send on it fails until someone connects it again.
CREDENTIALS_REFUSED = {"190", "20003"}
CREDENTIALS_ALERT = "channel.token_rejected"  # worded by the alerts app (core.events.ALERT_RAISED)
PROVIDER_NAMES = {"whatsapp_cloud": "Meta", "sms_twilio": "Twilio"}


def _credentials_alert(channel: Channel, done: list[Outcome]) -> None:
    """A batch with a credentials error raises the channel's alert; a batch that sent clears it."""
    refused = next((o.error_code for o in done if o.error_code in CREDENTIALS_REFUSED), "")
    if refused:
        detail = {
            "channel_id": channel.pk,
            "name": channel.name,
            "provider": PROVIDER_NAMES.get(channel.kind, channel.kind),
            "code": refused,
        }
        payload: dict[str, Any] = {"kind": CREDENTIALS_ALERT, "key": str(channel.pk), "detail": detail}
        events.announce(events.ALERT_RAISED, _schema(), payload)
    elif any(o.status == MessageStatus.SENT for o in done):
        events.announce(events.ALERT_CLEARED, _schema(), {"kind": CREDENTIALS_ALERT, "key": str(channel.pk)})


# --- the one-message path (an agent's send in tests, the per-message baseline) -------------------


def dispatch_one(*, message_id: int) -> None:
    """Send one queued message now, from here (same claim, send and record as the runner's)."""
    if not tenant_is_active():
        return
    message = Message.objects.filter(pk=message_id).select_related("channel").first()
    if message is None:
        return
    channel = message.channel
    runner_id = f"once-{uuid.uuid4().hex[:12]}"
    jobs, held = claim(channel=channel, runner_id=runner_id, limit=1, only_ids=[message_id])
    outcomes = list(held)
    provider = provider_for(channel)
    for job in jobs:
        wait = 0.0
        if channel.rate_limit_per_s < UNLIMITED:
            wait = ratelimit.take(f"{_schema()}:channel:{channel.pk}", rate_per_s=channel.rate_limit_per_s)
        if wait > 0:
            due = timezone.now() + datetime.timedelta(seconds=wait)
            outcomes.append(Outcome(job.id, MessageStatus.QUEUED, next_attempt_at=due, given_back=True, **_ids(job)))
            continue
        try:
            result: SendResult | ProviderError = _send_now(provider, job.outbound)
        except ProviderError as exc:
            result = exc
        outcomes.append(outcome_of(job, result, channel))
    record(outcomes, runner_id=runner_id, channel=channel)


def _send_now(provider: ChannelProvider, outbound: OutboundMessage) -> SendResult:
    """The provider's async send where it has one (the runners' code, each answer read on its own),
    else its sync send in this thread (which may read the caller's uncommitted rows)."""
    if type(provider).send_async is ChannelProvider.send_async:
        return provider.send(outbound)

    async def once() -> SendResult:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20, connect=5)) as http:
            return await provider.send_async(http, outbound)

    return asyncio.run(once())


def _ids(job: Job) -> dict[str, Any]:
    return {"conversation_id": job.conversation_id, "contact_id": job.contact_id}


# --- runners: leases, heartbeat, recovery ----------------------------------------------------------


def _lease_key(schema: str, channel_id: int, slot: int) -> str:
    return f"dispatch:lease:{schema}:{channel_id}:{slot}"


def _alive_key(runner_id: str) -> str:
    return f"dispatch:alive:{runner_id}"


def _inflight_key(runner_id: str) -> str:
    return f"dispatch:inflight:{runner_id}"


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]); return 1
end
return 0
"""


def _close_connection() -> None:
    connection.close()  # this thread's own connection (resolved here, not in the caller's thread)


def runners_alive(channel_id: int, schema: str | None = None) -> int:
    client = redis_client()
    slots = settings.DISPATCH_RUNNERS_PER_CHANNEL
    keys = [_lease_key(schema or _schema(), channel_id, s) for s in range(slots)]
    return sum(1 for value in client.mget(keys) if value)


def kick_more(channel_id: int, schema: str) -> bool:
    """A backlog: one more runner for the channel while a lease slot is free (several serve one campaign)."""
    if runners_alive(channel_id, schema) >= settings.DISPATCH_RUNNERS_PER_CHANNEL:
        return False
    if not redis_client().set(f"dispatch:kick:{schema}:{channel_id}", "1", nx=True, px=3000):
        return False
    from inbox.tasks import dispatch_run

    dispatch_run.apply_async(args=(channel_id,), queue="dispatch", headers={"_schema_name": schema})
    return True


def recover() -> dict[str, int]:
    """Work held by runners that stopped beating: back to the queue, or `unknown` where its request may
    have left (it is in the runner's in-flight set). Returns the counts."""
    client = redis_client()
    runners = list(
        Message.objects.filter(status=MessageStatus.SENDING)
        .exclude(claimed_by="")
        .order_by()
        .values_list("claimed_by", flat=True)
        .distinct()
    )
    totals = {"requeued": 0, "unknown": 0}
    for runner_id in runners:
        if client.exists(_alive_key(runner_id)):
            continue
        maybe_left = [int(x) for x in client.smembers(_inflight_key(runner_id))]  # type: ignore[union-attr]
        held = Message.objects.filter(status=MessageStatus.SENDING, claimed_by=runner_id)
        with transaction.atomic():
            changed = list(held.filter(pk__in=maybe_left).values_list("pk", "conversation_id"))
            totals["unknown"] += held.filter(pk__in=maybe_left).update(
                status=MessageStatus.UNKNOWN,
                claimed_by="",
                error_code="runner_lost",
                error_text="The sender stopped while this request was in flight: it may or may not have gone out.",
            )
            totals["requeued"] += held.exclude(pk__in=maybe_left).update(
                status=MessageStatus.QUEUED, claimed_by="", next_attempt_at=timezone.now(), attempts=F("attempts") - 1
            )
            statuses_changed([(pk, MessageStatus.UNKNOWN, "runner_lost") for pk, _c in changed])
        client.delete(_inflight_key(runner_id))
        logger.warning("dispatcher runner %s was lost: %s so far", runner_id, totals)
    return totals


def _kick_key(schema: str, channel_id: int) -> str:
    return f"dispatch:kick:{schema}:{channel_id}"


def _poke_key(schema: str, channel_id: int) -> str:
    return f"dispatch:poke:{schema}:{channel_id}"


def kick(channel_id: int) -> bool:
    """Make sure a runner serves this channel soon: enqueue one unless one is alive (or was just asked for
    and has not started yet). A kick while a runner is alive leaves it a poke: a runner about to leave for
    want of work stays (or its task asks for a fresh runner), so no kick is lost in that moment."""
    client = redis_client()
    if runners_alive(channel_id):
        client.set(_poke_key(_schema(), channel_id), "1", px=int(LEASE_S * 1000))
        return False
    if not client.set(_kick_key(_schema(), channel_id), "1", nx=True, px=1500):
        return False
    from inbox.tasks import dispatch_run

    dispatch_run.apply_async(args=(channel_id,), queue="dispatch", headers={"_schema_name": _schema()})
    return True


def rekick_after(runner: Runner) -> bool:
    """After a runner left: a fresh one if a kick came while it was leaving or work is due now (and the
    tenant may send). Returns whether one was asked for."""
    if runner.slot is None or runner._lost_lease or not tenant_is_active():
        return False
    poked = redis_client().delete(_poke_key(runner.schema, runner.channel_id))
    due = Message.objects.filter(
        channel_id=runner.channel_id, status=MessageStatus.QUEUED, next_attempt_at__lte=timezone.now()
    ).exists()
    return (bool(poked) or due) and kick(runner.channel_id)


def kick_on_commit(channel_id: int) -> None:
    transaction.on_commit(lambda: kick(channel_id))


def ensure() -> int:
    """Beat (every few seconds, per tenant): recover dead runners' work, then kick a runner for every
    channel with due work or a running campaign. Returns how many runners were asked for."""
    if not tenant_is_active():
        return 0
    recover()
    now = timezone.now() + datetime.timedelta(seconds=1)
    due = set(
        Message.objects.filter(status=MessageStatus.QUEUED, direction=Direction.OUTBOUND, next_attempt_at__lte=now)
        .order_by()
        .values_list("channel_id", flat=True)
        .distinct()
    )
    for builder_channels in _channels_with_builds:
        due |= set(builder_channels())
    return sum(1 for channel_id in due if kick(channel_id))


_channels_with_builds: list[Callable[[], Iterable[int]]] = []


def register_build_channels(fn: Callable[[], Iterable[int]]) -> None:
    if fn not in _channels_with_builds:
        _channels_with_builds.append(fn)


@dataclass
class Stats:
    sent: int = 0
    outcomes: int = 0
    claimed: int = 0
    built: int = 0
    latency_ewma: float = 0.1
    latency_floor: float = 0.1  # the lowest latency of the last window of answers (the provider's own)
    extra: dict[str, Any] = field(default_factory=dict)


class Runner:
    """One runner serving one channel until nothing is due (or `max_runtime_s` passed). Several may run
    for the same channel (one lease slot each); the channel's token bucket is shared by all of them."""

    def __init__(
        self,
        channel_id: int,
        *,
        max_runtime_s: float | None = None,
        idle_exit_s: float = IDLE_EXIT_S,
        linger_s: float = LINGER_S,
        slot: int | None = None,
        inline: bool = False,
    ) -> None:
        self.channel_id = channel_id
        # inline: database work on this thread's connection (a test's transaction), not threads of its own
        self.inline = inline
        self.runner_id = f"r-{uuid.uuid4().hex[:16]}"
        self.schema = _schema()
        self.tenant = getattr(connection, "tenant", None)
        self.max_runtime_s = max_runtime_s if max_runtime_s is not None else settings.DISPATCH_MAX_RUNTIME_S
        self.idle_exit_s, self.linger_s = idle_exit_s, linger_s
        self.wanted_slot = slot
        self.slot: int | None = None
        self.stats = Stats()
        self._results: list[Outcome] = []
        self._buffer: list[Job] = []
        self._inflight = 0
        self._sending: set[asyncio.Task[None]] = set()
        self._tokens = 0
        self._stop = False
        self._lost_lease = False
        self._building = False
        self._latency_min, self._latency_n = math.inf, 0

    # --- the lease ---
    def acquire(self) -> bool:
        client = redis_client()
        slots = range(settings.DISPATCH_RUNNERS_PER_CHANNEL) if self.wanted_slot is None else [self.wanted_slot]
        px = int(LEASE_S * 1000)
        client.set(_alive_key(self.runner_id), "1", px=px)
        for slot in slots:
            if client.set(_lease_key(self.schema, self.channel_id, slot), self.runner_id, nx=True, px=px):
                self.slot = slot
                return True
        client.delete(_alive_key(self.runner_id))
        return False

    def _renew(self) -> bool:
        assert self.slot is not None
        client = redis_client()
        script = client.register_script(_RENEW)
        keys = [_lease_key(self.schema, self.channel_id, self.slot), _alive_key(self.runner_id)]
        return bool(script(keys=keys, args=[self.runner_id, int(LEASE_S * 1000)]))

    def release(self) -> None:
        client = redis_client()
        if self.slot is not None:
            key = _lease_key(self.schema, self.channel_id, self.slot)
            if client.get(key) == self.runner_id.encode():
                client.delete(key)
        client.delete(_alive_key(self.runner_id))

    # --- running ---
    def run(self) -> Stats:
        """Serve the channel from this (sync) thread; database work goes to threads of their own."""
        if not self.acquire():
            return self.stats
        # The kick that asked for this runner is served: a kick from now on finds this lease (and pokes).
        redis_client().delete(_kick_key(self.schema, self.channel_id))
        if not self.inline:
            # The event loop thread gives the GIL up at every socket call and waits to get it back while the
            # build, claim and record threads run Python: at CPython's 5 ms switch interval, that wait is
            # what a send costs. Measured in bench/dispatch.py (README "Dispatch engine").
            sys.setswitchinterval(settings.DISPATCH_GIL_SWITCH_S)
        try:
            recover()
            if self.inline:
                self._run_inline()
            else:
                asyncio.run(self._serve())
        finally:
            self.release()
        return self.stats

    def _run_inline(self) -> None:
        """The event loop in a thread of its own; its database calls come back to this thread (and its
        connection, a test's transaction), which serves them until the loop ends."""
        self._inline_work: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        failure: list[BaseException] = []

        def loop() -> None:
            try:
                asyncio.run(self._serve())
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=loop, name=f"runner-{self.runner_id}")
        thread.start()
        while thread.is_alive() or not self._inline_work.empty():
            try:
                fn, future = self._inline_work.get(timeout=0.01)
            except queue.Empty:
                continue
            if not future.set_running_or_notify_cancel():
                continue  # its caller was cancelled (the runner is stopping)
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
        thread.join()
        if failure:
            raise failure[0]

    def _executor(self) -> ThreadPoolExecutor:
        tenant = self.tenant

        def init() -> None:
            if tenant is not None:
                connection.set_tenant(tenant)  # type: ignore[attr-defined]

        return ThreadPoolExecutor(max_workers=1, initializer=init)

    async def _in(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.inline:
            future: Future[T] = Future()
            self._inline_work.put((lambda: fn(*args, **kwargs), future))
            return await asyncio.wrap_future(future)
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args, **kwargs))

    def _concurrency(self, rate: float) -> int:
        """Enough requests in flight to hold the rate at the measured latency (Little's law, with room).
        Without a limit, this runner's share of DISPATCH_UNLIMITED_TARGET_PER_S at the latency floor (the
        provider's answer time without our own queueing: sizing from the average would feed back, each
        extra request in flight raising the latency that asks for more, up to the cap)."""
        cap = settings.DISPATCH_MAX_IN_FLIGHT
        if rate >= UNLIMITED:
            share = settings.DISPATCH_UNLIMITED_TARGET_PER_S / max(1, settings.DISPATCH_RUNNERS_PER_CHANNEL)
            return int(max(8, min(cap, math.ceil(share * self.stats.latency_floor * 4) + 8)))
        return int(max(4, min(cap, math.ceil(rate * self.stats.latency_ewma * 2) + 4)))

    def _latency_seen(self, elapsed: float) -> None:
        self.stats.latency_ewma = 0.9 * self.stats.latency_ewma + 0.1 * elapsed
        self._latency_min = min(self._latency_min, elapsed)
        self._latency_n += 1
        if self._latency_n >= LATENCY_WINDOW:
            self.stats.latency_floor, self._latency_min, self._latency_n = self._latency_min, math.inf, 0

    async def _serve(self) -> None:
        claim_pool, record_pool, build_pool = self._executor(), self._executor(), self._executor()
        pools = (claim_pool, record_pool, build_pool)
        try:
            channel = await self._in(claim_pool, Channel.objects.get, pk=self.channel_id)
            self.channel = channel
            self.provider = await self._in(claim_pool, provider_for, channel)  # made in the tenant's schema
            rate = float(channel.rate_limit_per_s)
            connector = aiohttp.TCPConnector(limit=settings.DISPATCH_MAX_IN_FLIGHT, ttl_dns_cache=300)
            timeout = aiohttp.ClientTimeout(total=20, connect=5)
            # The event loop's own Redis calls are asyncio's: a synchronous round trip per group of sends
            # held the loop (and every answer waiting on it) for the round trip and the GIL after it.
            self._redis = redis_async_client()
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http, self._redis:
                self.http = http
                tasks = [
                    asyncio.create_task(self._heartbeat()),
                    asyncio.create_task(self._flusher(record_pool)),
                    asyncio.create_task(self._builder(build_pool, rate)),
                ]
                try:
                    await self._feed(claim_pool, rate)
                finally:
                    self._stop = True
                    while self._inflight:
                        await asyncio.sleep(0.01)
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    if self._buffer:  # claimed, never sent: straight back to the queue
                        self._results += [
                            Outcome(j.id, MessageStatus.QUEUED, next_attempt_at=timezone.now(), given_back=True)
                            for j in self._buffer
                        ]
                        self._buffer = []
                    await self._flush(record_pool)
                    await self._in(build_pool, self._build_once, 0)  # completes what just finished
        finally:
            for pool in pools:
                if not self.inline:
                    await self._in(pool, _close_connection)
                pool.shutdown(wait=True)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            st = self.stats
            logger.debug(
                "runner %s: claimed %d built %d sent %d recorded %d, in flight %d, buffer %d, results %d, "
                "latency %.1f ms (floor %.1f)",
                self.runner_id,
                st.claimed,
                st.built,
                st.sent,
                st.outcomes,
                self._inflight,
                len(self._buffer),
                len(self._results),
                st.latency_ewma * 1000,
                st.latency_floor * 1000,
            )
            if not await asyncio.to_thread(self._renew):
                logger.error("dispatcher runner %s lost its lease: stopping", self.runner_id)
                self._lost_lease = True
                self._stop = True
                return

    async def _feed(self, claim_pool: ThreadPoolExecutor, rate: float) -> None:
        started = time.monotonic()
        idle_since: float | None = None
        batch = int(max(20, min(1000, rate if rate < UNLIMITED else 1000)))
        inflight_key = _inflight_key(self.runner_id)
        client = redis_client()
        inflight = self._redis
        bucket = f"{self.schema}:channel:{self.channel_id}"
        burst = max(1.0, rate / 10)
        slot_free = asyncio.Event()
        self._slot_free = slot_free
        while not self._stop:
            if time.monotonic() - started > self.max_runtime_s:
                break
            concurrency = self._concurrency(rate)
            if len(self._buffer) < max(concurrency, batch // 2):
                active = await self._in(claim_pool, tenant_is_active)
                if not active:
                    break
                jobs, held = await self._in(
                    claim_pool, claim, channel=self.channel, runner_id=self.runner_id, limit=batch
                )
                self._buffer += jobs
                self._results += held
                self.stats.claimed += len(jobs)
                if jobs or held or self._inflight or self._building:
                    idle_since = None
                    if not jobs and not self._buffer:
                        await asyncio.sleep(0.02)
                elif not self._buffer:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > self.idle_exit_s:
                        poked = await asyncio.to_thread(client.delete, _poke_key(self.schema, self.channel_id))
                        soon = poked or await self._in(claim_pool, self._due_soon)
                        if not soon:
                            break
                        idle_since = None
                    await asyncio.sleep(0.05)
                    continue
            free = concurrency - self._inflight
            if free <= 0 or not self._buffer:
                slot_free.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(slot_free.wait(), timeout=0.05)
                continue
            wanted = min(free, len(self._buffer))
            if rate < UNLIMITED:
                if self._tokens <= 0:
                    granted, wait = ratelimit.take_up_to(bucket, rate_per_s=rate, wanted=wanted, burst=burst)
                    if not granted:
                        await asyncio.sleep(min(wait, 0.5))
                        continue
                    self._tokens += granted
                wanted = min(wanted, self._tokens)
                self._tokens -= wanted
            group, self._buffer = self._buffer[:wanted], self._buffer[wanted:]
            self._inflight += len(group)  # their slots, taken before the await
            try:  # in the in-flight set before any byte of them leaves; awaited, so the loop serves the answers
                await inflight.sadd(inflight_key, *[job.id for job in group])
            except BaseException:
                self._inflight -= len(group)
                self._buffer = group + self._buffer
                raise
            for job in group:
                task = asyncio.create_task(self._send(job))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    def _due_soon(self) -> bool:
        horizon = timezone.now() + datetime.timedelta(seconds=self.linger_s)
        if Message.objects.filter(
            channel_id=self.channel_id, status=MessageStatus.QUEUED, next_attempt_at__lte=horizon
        ).exists():
            return True
        return self._build_once(1) > 0

    async def _send(self, job: Job) -> None:
        began = time.monotonic()
        try:
            try:
                result: SendResult | ProviderError = await self.provider.send_async(self.http, job.outbound)
            except ProviderError as exc:
                result = exc
            except Exception as exc:  # a bug in a provider: the request may have left, so unknown
                logger.exception("provider send of message %s raised", job.id)
                result = ProviderError(ErrorKind.UNKNOWN, "internal", f"{type(exc).__name__}")
            elapsed = time.monotonic() - began
            self._latency_seen(elapsed)
            outcome = outcome_of(job, result, self.channel)
            self._results.append(outcome)
            if outcome.status == MessageStatus.SENT:
                self.stats.sent += 1
        finally:
            self._inflight -= 1
            self._slot_free.set()

    async def _flusher(self, pool: ThreadPoolExecutor) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            await self._flush(pool)

    async def _flush(self, pool: ThreadPoolExecutor) -> None:
        if not self._results:
            return
        batch, self._results = self._results, []
        try:
            await self._in(pool, record, batch, runner_id=self.runner_id, channel=self.channel)
        except Exception:
            logger.exception("dispatcher runner %s could not record %d outcomes", self.runner_id, len(batch))
            self._results = batch + self._results  # kept: tried again at the next flush
            return
        self.stats.outcomes += len(batch)
        await asyncio.to_thread(redis_client().srem, _inflight_key(self.runner_id), *[o.id for o in batch])

    def _build_once(self, wanted: int) -> int:
        built = 0
        for builder in _builders:
            built += builder(self.channel_id, wanted)
        return built

    async def _builder(self, pool: ThreadPoolExecutor, rate: float) -> None:
        """Campaign messages are built ahead of the sends, in their own thread: the next batch's INSERT
        overlaps the requests of the one before."""
        lookahead = int(max(200, min(5000, rate * 2 if rate < UNLIMITED else 5000)))
        while not self._stop:
            backlog = await self._in(pool, self._backlog, lookahead)
            built = 0
            if backlog < lookahead:
                self._building = True
                try:
                    built = await self._in(pool, self._build_once, lookahead - backlog)
                except Exception:
                    logger.exception("campaign build on channel %s failed", self.channel_id)
                finally:
                    self._building = False
            self.stats.built += built
            if backlog >= lookahead // 2 and not self.inline:
                await asyncio.to_thread(kick_more, self.channel_id, self.schema)
            await asyncio.sleep(0.02 if built else 0.25)

    def _backlog(self, cap: int) -> int:
        return int(
            Message.objects.filter(channel_id=self.channel_id, status=MessageStatus.QUEUED)
            .exclude(next_attempt_at=None)
            .values("pk")[:cap]
            .count()
        )
