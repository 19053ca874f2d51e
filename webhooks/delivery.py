"""The delivery runner: claims a tenant's due deliveries under a lease, sends them many at a time through
the SSRF guard's pooled client (15 s timeout, no redirects), writes the results in bulk and schedules the
retries as rows with a due time (never countdown tasks).

Retries, with jitter, after about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h; then failed.
410 Gone disables the endpoint. 429 (or a Retry-After), or a batch of which the endpoint took none, also
holds back the endpoint's other deliveries (Retry-After when given, else the retry delay); a 5xx among
successes only retries that delivery. An endpoint failing for DISABLE_AFTER is disabled. A runner that
dies leaves its claims to expire: they are sent again with the same webhook id (Standard Webhooks
receivers drop duplicates by id).
"""

from __future__ import annotations

import json
import logging
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
from django.db import connection, transaction
from django.db.models import Min, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from core.redis import redis_client
from core.urlguard import FetchFailed, guarded_client, url_check
from webhooks import signing
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint
from webhooks.services import (
    active_secrets,
    endpoint_alert_disabled,
    endpoint_alert_failing,
    endpoint_alerts_clear,
    endpoint_disable,
    subscriptions_changed,
)

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.2
TIMEOUT_S = 15.0
LEASE = timedelta(seconds=60)
BATCH = 200
# Sending threads per runner process. Measured on loopback (bench/webhook_delivery.py, 2 cores): 12 gave
# 441 deliveries/s, 32 gave 358/s (the threads then contend for the GIL more than they wait on the network).
THREADS = 12
DISABLE_AFTER = timedelta(days=5)
ALERT_AFTER = timedelta(hours=1)  # failing this long (or a delivery out of retries): the tenant is told
MAX_SLOWDOWN = timedelta(hours=1)
BODY_KEPT = 2048
DUE_KEY = "hooks:due"  # sorted set: tenant schema -> when its next delivery is due (epoch seconds)
RUN_FLAG = "hooks:run:{}"
USER_AGENT = "ControlPanel-Webhooks/1.0"


def retry_delay(attempt: int, rng: random.Random | None = None) -> float | None:
    """Seconds to wait after failed attempt number `attempt` (1-based); None when none is left."""
    if attempt > len(RETRY_DELAYS_S):
        return None
    base = RETRY_DELAYS_S[attempt - 1]
    return base * (1 + (rng or random).uniform(-JITTER, JITTER))


@dataclass
class Outcome:
    delivery_id: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    body: str
    error: str
    retry_after_s: float | None
    skipped: bool = False  # not sent: its endpoint asked to be left alone meanwhile (given back, not counted)


# (tenant schema, endpoint id) -> until when (epoch s) it asked us to wait (429, Retry-After), as this
# process heard it: a batch already in flight skips that endpoint instead of sending on until recorded.
_asked_to_wait: dict[tuple[str, int], float] = {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _attempt(delivery: Delivery, endpoint: Endpoint, secrets: list[str], schema: str = "") -> Outcome:
    """One attempt, in a sending thread (`schema`: the tenant's, for the wait it may be asked for)."""
    started, clock = timezone.now(), time.monotonic()
    waiting_until = _asked_to_wait.get((schema, endpoint.pk))
    if waiting_until is not None:
        if waiting_until > time.time():
            return Outcome(delivery.pk, started, 0, None, "", "", None, skipped=True)
        _asked_to_wait.pop((schema, endpoint.pk), None)  # the wait is over: forgotten
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    headers = {
        **endpoint.headers,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(secrets, delivery.webhook_id, timestamp, body),
    }
    code: int | None = None
    text = error = ""
    retry_after = None
    try:
        # The address is checked where the connection is made (the guard's network backend), once per
        # pooled connection; here only the URL's form, without a DNS lookup per attempt.
        url = url_check(endpoint.url, resolve=False)
        response = guarded_client().post(url, content=body, headers=headers, timeout=TIMEOUT_S)
        code, text, retry_after = response.status_code, response.text[:BODY_KEPT], _retry_after(response)
        if code == 429 or (retry_after is not None and code >= 500):
            wait = retry_after if retry_after is not None else RETRY_DELAYS_S[0]
            _asked_to_wait[(schema, endpoint.pk)] = time.time() + wait
    except FetchFailed as exc:
        error = f"refused: {exc}"
    except httpx.TimeoutException:
        error = "no answer in 15 s"
    except httpx.HTTPError as exc:
        error = f"connection failed: {type(exc).__name__}"
    return Outcome(delivery.pk, started, int((time.monotonic() - clock) * 1000), code, text, error, retry_after)


def _claim(now: datetime, limit: int) -> list[Delivery]:
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)
            .filter(Q(claimed_until=None) | Q(claimed_until__lt=now))
            .filter(Q(endpoint__slow_until=None) | Q(endpoint__slow_until__lte=now))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        Delivery.objects.filter(pk__in=ids).update(claimed_until=now + LEASE)
    return list(Delivery.objects.select_related("endpoint").filter(pk__in=ids))


@lru_cache(maxsize=1)
def _senders() -> ThreadPoolExecutor:
    """The process's sending threads, started once (made in the worker process, after Celery's fork)."""
    return ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="webhook-send")


@dataclass
class _InFlight:
    claimed: list[Delivery]
    outcomes: list[Future[Outcome]]


def _send(limit: int) -> _InFlight | None:
    """Claim a batch and hand it to the sending threads (None: nothing due)."""
    claimed = _claim(timezone.now(), limit)
    if not claimed:
        return None
    secrets = {d.endpoint_id: active_secrets(d.endpoint) for d in claimed}
    pool, schema = _senders(), current_schema()
    return _InFlight(claimed, [pool.submit(_attempt, d, d.endpoint, secrets[d.endpoint_id], schema) for d in claimed])


def _settle(batch: _InFlight) -> int:
    _record(batch.claimed, [future.result() for future in batch.outcomes])
    return len(batch.claimed)


def deliver_batch(limit: int = BATCH) -> int:
    """Claim and send one batch of this tenant's due deliveries; how many were handled."""
    batch = _send(limit)
    return _settle(batch) if batch is not None else 0


def _record(claimed: list[Delivery], outcomes: list[Outcome]) -> None:
    now = timezone.now()
    by_id = {d.pk: d for d in claimed}
    endpoints: dict[int, Endpoint] = {d.endpoint_id: d.endpoint for d in claimed}
    was_failing = {pk: e.failing_since is not None for pk, e in endpoints.items()}
    gave_up: dict[int, str] = {}  # endpoint -> the last answer of a delivery that ran out of retries
    last_answer: dict[int, str] = {}
    attempts: list[Attempt] = []
    answered_ok: set[int] = set()  # endpoints that took at least one delivery of this batch
    holds: dict[int, tuple[datetime, bool]] = {}  # endpoint -> (held until, the receiver asked for it)
    for outcome in outcomes:
        delivery = by_id[outcome.delivery_id]
        endpoint = endpoints[delivery.endpoint_id]
        if outcome.skipped:  # given back as it was: due again once the endpoint's hold ends
            delivery.claimed_until = None
            continue
        delivery.attempts += 1
        delivery.claimed_until = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error[:300]
        code = outcome.status_code
        attempts.append(
            Attempt(
                delivery=delivery,
                number=delivery.attempts,
                started_at=outcome.started_at,
                duration_ms=outcome.duration_ms,
                status_code=code,
                response_body=outcome.body,
                error=outcome.error[:300],
            )
        )
        if code is not None and 200 <= code < 300:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, now, None
            endpoint.failing_since, endpoint.slow_until = None, None
            answered_ok.add(endpoint.pk)
            continue
        endpoint.failing_since = endpoint.failing_since or now
        last_answer[endpoint.pk] = str(code) if code is not None else (outcome.error[:60] or "-")
        if code == 410:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            endpoint.enabled, endpoint.disabled_reason = False, "answered 410 Gone"
            continue
        delay = retry_delay(delivery.attempts)
        if delay is None:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            gave_up[endpoint.pk] = last_answer[endpoint.pk]
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        if code == 429 or (code is not None and code >= 500):
            hold = timedelta(seconds=outcome.retry_after_s if outcome.retry_after_s is not None else delay or 0)
            until = now + min(hold, MAX_SLOWDOWN)
            asked = code == 429 or outcome.retry_after_s is not None  # the receiver asked us to wait
            held = holds.get(endpoint.pk)
            holds[endpoint.pk] = (max(held[0], until) if held else until, asked or (held[1] if held else False))
    # Holding the endpoint's other deliveries back: when it asked (429, Retry-After), or when it failed
    # everything it was sent in this batch. A 5xx among successes is that delivery's own retry only.
    for endpoint_id, (until, asked) in holds.items():
        endpoint = endpoints[endpoint_id]
        if asked or endpoint_id not in answered_ok:
            endpoint.slow_until = max(endpoint.slow_until or until, until)
    with transaction.atomic():
        _deliveries_write(claimed)
        Attempt.objects.bulk_create(attempts)
        for endpoint in endpoints.values():
            if not endpoint.enabled:
                subscriptions_changed()
            Endpoint.objects.filter(pk=endpoint.pk).update(
                failing_since=endpoint.failing_since,
                slow_until=endpoint.slow_until,
                **({"enabled": False, "disabled_reason": endpoint.disabled_reason} if not endpoint.enabled else {}),
            )
            if endpoint.enabled and endpoint.failing_since and now - endpoint.failing_since > DISABLE_AFTER:
                endpoint_disable(endpoint, f"failing since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC")
                logger.warning("webhook endpoint %s disabled: failing for days", endpoint.pk)
            elif not endpoint.enabled:
                endpoint_alert_disabled(endpoint)  # 410 Gone
            elif endpoint.failing_since is None:
                if was_failing[endpoint.pk]:
                    endpoint_alerts_clear(endpoint)  # delivers again
            elif endpoint.pk in gave_up or now - endpoint.failing_since >= ALERT_AFTER:
                endpoint_alert_failing(endpoint, status=gave_up.get(endpoint.pk) or last_answer[endpoint.pk])


def _deliveries_write(claimed: list[Delivery]) -> None:
    """The batch's outcomes in one UPDATE ... FROM (VALUES ...): bulk_update's CASE per row and field costs
    more Python than the sends themselves. The claim is let go (claimed_until NULL) in the same statement."""
    rows = ", ".join(["(%s::bigint, %s::int, %s::int, %s, %s, %s::timestamptz, %s::timestamptz)"] * len(claimed))
    params: list[Any] = []
    for d in claimed:
        params += [d.pk, d.attempts, d.last_status_code, d.last_error, d.status, d.delivered_at, d.next_attempt_at]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Delivery._meta.db_table} AS d SET attempts = v.attempts, claimed_until = NULL, "  # noqa: S608 (our names)
            "last_status_code = v.code, last_error = v.error, status = v.status, delivered_at = v.delivered_at, "
            "next_attempt_at = v.due "
            f"FROM (VALUES {rows}) AS v(id, attempts, code, error, status, delivered_at, due) WHERE d.id = v.id",
            params,
        )


def deliver_due(*, time_budget_s: float = 50.0) -> int:
    """Work through this tenant's due deliveries, two batches at a time: the next is claimed and sending
    while the last one's outcomes are written, so the threads never wait on the database. (An endpoint
    that asks us to wait is skipped by the batch in flight too: _asked_to_wait.)"""
    deadline, total = time.monotonic() + time_budget_s, 0
    in_flight = _send(BATCH)
    while in_flight is not None:
        following = _send(BATCH) if time.monotonic() < deadline else None
        total += _settle(in_flight)
        in_flight = following
    return total


def next_due_at() -> datetime | None:
    """When this tenant's next pending delivery may go: its retry time, or later while its endpoint is
    held back or a runner's claim on it has not expired."""
    pending = Delivery.objects.filter(status=DeliveryStatus.PENDING, endpoint__enabled=True)
    due = Greatest(
        "next_attempt_at",
        Coalesce("endpoint__slow_until", "next_attempt_at"),
        Coalesce("claimed_until", "next_attempt_at"),
    )
    found: datetime | None = pending.aggregate(first=Min(due))["first"]
    return found


def wake_schedule(schema: str) -> None:
    when = next_due_at()
    if when is not None:
        redis_client().zadd(DUE_KEY, {schema: when.timestamp()}, lt=True)  # added, or moved earlier


def runner_start(schema: str) -> None:
    """Have one runner go through `schema`'s due deliveries (a running one picks up new work itself)."""
    from config.celery import app

    if redis_client().set(RUN_FLAG.format(schema), "1", nx=True, ex=int(LEASE.total_seconds()) * 2):
        app.send_task("webhooks.deliver", queue="hooks", headers={"_schema_name": schema})


def run(schema: str) -> int:
    """The runner task's body: deliver, let go of the flag, look once more, schedule the next wake-up."""
    total = deliver_due()
    redis_client().delete(RUN_FLAG.format(schema))
    total += deliver_batch()  # anything that arrived after our last look and before the flag went
    wake_schedule(schema)
    return total


def due_sweep(now: float | None = None) -> int:
    """Beat: start a runner for every tenant whose next delivery is due."""
    r = redis_client()
    found: list[bytes] = r.zrangebyscore(DUE_KEY, "-inf", now or time.time())  # type: ignore[assignment]
    schemas = [s.decode() for s in found]
    for schema in schemas:
        r.zrem(DUE_KEY, schema)
        runner_start(schema)
    return len(schemas)


def current_schema() -> str:
    return str(getattr(connection, "schema_name", "public"))
