"""Anti-ban pacing for sends over WhatsApp Web (QR) numbers: a pure policy.

WhatsApp bans linked-device numbers that send like machines. The policy here answers one question for one
number, from its recent history, its settings and the time: when may the next message go, and should
sending stop altogether? It reads nothing and writes nothing, so the dispatcher calls it for every QR
channel it is about to use and tests drive it with a frozen clock.

Rules, in the order they are checked:
1. auto-stop: among the last `stop_window` sends, the share that failed reaches `stop_failure_rate`, or the
   share left unanswered (no reply within `reply_wait_s`) reaches `stop_unanswered_rate`: stop, with the
   reason, until a person resumes (sends before `judged_since` are not judged again);
2. daily cap with warm-up: a new number may send `warmup_start` messages on its first day, growing in
   equal steps to `daily_cap` on day `warmup_days`; once today's sends reach the cap, the next one waits
   for tomorrow (local midnight in `timezone`);
3. batches: after `batch_size` sends without a long gap, a pause between `batch_pause_min_s` and
   `batch_pause_max_s`;
4. a random delay between `min_delay_s` and `max_delay_s` after the previous send.

The random draws are seeded by the number and the time of its last send, so asking twice gives the same
answer (a poller asking often cannot shorten the delays by drawing again).
"""

from __future__ import annotations

import datetime
import hashlib
import random
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PacingSettings:
    """Conservative defaults: about one message a minute, 30 per batch then 10-20 minutes of rest, 20 on a
    number's first day growing to 200 a day after two weeks, stop at 15% failures or 97% unanswered."""

    min_delay_s: int = 25
    max_delay_s: int = 75
    batch_size: int = 30
    batch_pause_min_s: int = 600
    batch_pause_max_s: int = 1200
    daily_cap: int = 200
    warmup_start: int = 20
    warmup_days: int = 14
    stop_window: int = 50
    stop_min_sample: int = 20
    stop_failure_rate: float = 0.15
    stop_unanswered_rate: float = 0.97
    reply_wait_s: int = 6 * 3600
    timezone: str = "America/Sao_Paulo"

    def __post_init__(self) -> None:
        if not 0 < self.min_delay_s <= self.max_delay_s:
            raise ValueError("0 < min_delay_s <= max_delay_s")
        if not 0 < self.batch_pause_min_s <= self.batch_pause_max_s:
            raise ValueError("0 < batch_pause_min_s <= batch_pause_max_s")
        if self.batch_size < 1 or self.daily_cap < 1 or not 1 <= self.warmup_start <= self.daily_cap:
            raise ValueError("batch_size, daily_cap >= 1 and 1 <= warmup_start <= daily_cap")
        if self.warmup_days < 1 or self.stop_window < 1 or self.stop_min_sample < 1:
            raise ValueError("warmup_days, stop_window, stop_min_sample >= 1")
        if not (0 < self.stop_failure_rate <= 1 and 0 < self.stop_unanswered_rate <= 1):
            raise ValueError("stop rates in (0, 1]")


class Outcome:
    SENT = "sent"  # accepted by WhatsApp (delivered and read count as sent too)
    FAILED = "failed"


@dataclass(frozen=True)
class SendRecord:
    """One message this number sent (or tried to): when, how it ended, and whether the contact replied."""

    at: datetime.datetime
    outcome: str = Outcome.SENT
    replied: bool = False


@dataclass(frozen=True)
class ChannelHistory:
    """What the policy needs to know about one number. `recent` holds its latest sends, oldest first (at least
    `max(stop_window, batch_size)` of them, and all of today's); `first_sent_at` is the first send the number
    ever made through us (None: it has not sent yet, today is its first day)."""

    key: str  # the number's stable id (schema:channel id) for the seeded draws
    recent: Sequence[SendRecord]
    first_sent_at: datetime.datetime | None = None
    sent_today: int | None = None  # when the caller counted them itself; else counted from `recent`
    judged_since: datetime.datetime | None = None  # a person resumed after a stop: older sends are not judged


class Reason:
    READY = "ready"
    DELAY = "delay"
    BATCH_PAUSE = "batch_pause"
    DAILY_CAP = "daily_cap"
    STOP_FAILURES = "stop_failures"
    STOP_UNANSWERED = "stop_unanswered"


@dataclass(frozen=True)
class Decision:
    """`send_at`: the earliest moment the next message may leave (<= now: it may go now); None when `stop`.
    `reason` names the rule that set it; `cap_today`/`sent_today` and the rates are shown to people."""

    send_at: datetime.datetime | None
    stop: bool
    reason: str
    cap_today: int
    sent_today: int
    failure_rate: float = 0.0
    unanswered_rate: float = 0.0

    def may_send(self, now: datetime.datetime) -> bool:
        return not self.stop and self.send_at is not None and self.send_at <= now


def warmup_cap(settings: PacingSettings, day: int) -> int:
    """Messages allowed on the number's `day`-th day (1 = its first): linear growth to the full cap."""
    if day >= settings.warmup_days or settings.warmup_days == 1:
        return settings.daily_cap
    step = (settings.daily_cap - settings.warmup_start) / (settings.warmup_days - 1)
    return int(settings.warmup_start + step * (max(day, 1) - 1))


def _draw(key: str, last: datetime.datetime, salt: str, low: int, high: int) -> float:
    seed = hashlib.sha256(f"{key}|{last.isoformat()}|{salt}".encode()).digest()
    return random.Random(seed).uniform(low, high)  # noqa: S311 - pacing jitter, not a secret


def _rates(history: ChannelHistory, settings: PacingSettings, now: datetime.datetime) -> tuple[float, float, int, int]:
    since = history.judged_since
    window = [r for r in sorted(history.recent, key=lambda r: r.at) if since is None or r.at >= since][
        -settings.stop_window :
    ]
    failed = sum(1 for r in window if r.outcome == Outcome.FAILED)
    # only sends old enough to have had their chance of an answer are judged unanswered
    judged = [
        r for r in window if r.outcome != Outcome.FAILED and (now - r.at).total_seconds() >= settings.reply_wait_s
    ]
    unanswered = sum(1 for r in judged if not r.replied)
    failure_rate = failed / len(window) if window else 0.0
    unanswered_rate = unanswered / len(judged) if judged else 0.0
    return failure_rate, unanswered_rate, len(window), len(judged)


def pacing_next(*, history: ChannelHistory, settings: PacingSettings, now: datetime.datetime) -> Decision:
    """When the next message of this QR number may go, or whether its sending must stop (see the module
    docstring for the rules). `now` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    tz = zoneinfo.ZoneInfo(settings.timezone)
    local_now = now.astimezone(tz)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    recent = sorted(history.recent, key=lambda r: r.at)
    sent_today = history.sent_today if history.sent_today is not None else sum(1 for r in recent if r.at >= midnight)
    first = history.first_sent_at or (recent[0].at if recent else None)
    day = 1 if first is None else (local_now.date() - first.astimezone(tz).date()).days + 1
    cap = warmup_cap(settings, day)

    failure_rate, unanswered_rate, sample, judged = _rates(history, settings, now)

    def decided(send_at: datetime.datetime | None, reason: str, stop: bool = False) -> Decision:
        return Decision(send_at, stop, reason, cap, sent_today, round(failure_rate, 4), round(unanswered_rate, 4))

    if sample >= settings.stop_min_sample and failure_rate >= settings.stop_failure_rate:
        return decided(None, Reason.STOP_FAILURES, stop=True)
    if judged >= settings.stop_min_sample and unanswered_rate >= settings.stop_unanswered_rate:
        return decided(None, Reason.STOP_UNANSWERED, stop=True)
    if sent_today >= cap:
        tomorrow = midnight + datetime.timedelta(days=1)  # wall-clock arithmetic: the next local midnight
        return decided(tomorrow.astimezone(datetime.UTC), Reason.DAILY_CAP)
    if not recent:
        return decided(now, Reason.READY)

    last = recent[-1].at
    run = 1  # sends since the last long gap, the last one included
    for earlier, later in zip(reversed(recent[:-1]), reversed(recent[1:]), strict=True):
        if (later.at - earlier.at).total_seconds() >= settings.batch_pause_min_s:
            break
        run += 1
    if run >= settings.batch_size:
        pause = _draw(history.key, last, "pause", settings.batch_pause_min_s, settings.batch_pause_max_s)
        send_at, reason = last + datetime.timedelta(seconds=pause), Reason.BATCH_PAUSE
    else:
        delay = _draw(history.key, last, "delay", settings.min_delay_s, settings.max_delay_s)
        send_at, reason = last + datetime.timedelta(seconds=delay), Reason.DELAY
    if send_at <= now:
        return decided(send_at, Reason.READY)
    return decided(send_at, reason)


def rotation_pick(decisions: Mapping[int, Decision], now: datetime.datetime) -> int | None:
    """Which of several QR numbers sends the next message: of those not stopped, the one free soonest;
    among those free now, the one least used against its cap today (then the lowest id). None: all stopped."""
    live = {pk: d for pk, d in decisions.items() if not d.stop and d.send_at is not None}
    if not live:
        return None

    def order(item: tuple[int, Decision]) -> tuple[datetime.datetime, float, int]:
        pk, decision = item
        assert decision.send_at is not None
        return (max(decision.send_at, now), decision.sent_today / max(decision.cap_today, 1), pk)

    return min(live.items(), key=order)[0]
