"""Anti-ban pacing of QR numbers: the pure policy under a frozen clock, and the history it is fed from the
database (real messages of a real channel)."""

from __future__ import annotations

import datetime
import itertools
import uuid
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from whatsapp.pacing import (
    ChannelHistory,
    Decision,
    Outcome,
    PacingSettings,
    Reason,
    SendRecord,
    pacing_next,
    rotation_pick,
    warmup_cap,
)

UTC = datetime.UTC
# 10:00 in São Paulo (UTC-3) on a Monday
MORNING = datetime.datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
S = PacingSettings()


def history(sends: list[SendRecord], first: datetime.datetime | None = None, key: str = "t:1") -> ChannelHistory:
    return ChannelHistory(key=key, recent=sends, first_sent_at=first)


def spaced(start: datetime.datetime, count: int, every_s: float, **kw: Any) -> list[SendRecord]:
    return [SendRecord(start + datetime.timedelta(seconds=i * every_s), **kw) for i in range(count)]


def decide(h: ChannelHistory, settings: PacingSettings = S) -> Decision:
    return pacing_next(history=h, settings=settings, now=timezone.now())


def test_a_number_that_never_sent_may_send_now() -> None:
    with time_machine.travel(MORNING, tick=False):
        decision = decide(history([]))
    assert decision.may_send(MORNING) and decision.reason == Reason.READY
    assert decision.cap_today == S.warmup_start  # day one of the warm-up


def test_random_delay_within_range_and_stable_for_the_same_history() -> None:
    last = MORNING - datetime.timedelta(seconds=5)
    with time_machine.travel(MORNING, tick=False):
        first = decide(history([SendRecord(last)]))
        again = decide(history([SendRecord(last)]))
        other_number = decide(history([SendRecord(last)], key="t:2"))
    assert first.reason == Reason.DELAY and not first.may_send(MORNING)
    assert first.send_at is not None
    wait = (first.send_at - last).total_seconds()
    assert S.min_delay_s <= wait <= S.max_delay_s
    assert again.send_at == first.send_at  # asking again draws nothing new
    assert other_number.send_at != first.send_at  # but numbers do not move in lockstep

    waits = set()
    for i in range(40):  # over many sends the delays spread across the range
        previous = MORNING + datetime.timedelta(minutes=3 * i)
        with time_machine.travel(previous + datetime.timedelta(seconds=1), tick=False):
            decision = decide(history([SendRecord(previous)]))
        assert decision.send_at is not None
        waits.add(round((decision.send_at - previous).total_seconds()))
    assert min(waits) < S.min_delay_s + 15 and max(waits) > S.max_delay_s - 15 and len(waits) > 20

    with time_machine.travel(first.send_at, tick=False):  # the clock reaches the drawn moment
        assert decide(history([SendRecord(last)])).may_send(timezone.now())


def test_a_full_batch_rests_for_a_long_pause() -> None:
    settings = PacingSettings(batch_size=5, min_delay_s=10, max_delay_s=20)
    start = MORNING - datetime.timedelta(minutes=30)
    earlier_batch = spaced(start, 5, 15)
    batch = spaced(earlier_batch[-1].at + datetime.timedelta(seconds=settings.batch_pause_min_s + 1), 5, 15)
    now = batch[-1].at + datetime.timedelta(seconds=30)
    with time_machine.travel(now, tick=False):
        decision = decide(history(earlier_batch + batch, first=start), settings)
        four = decide(history(earlier_batch + batch[:4], first=start), settings)
    assert decision.reason == Reason.BATCH_PAUSE and decision.send_at is not None
    rest = (decision.send_at - batch[-1].at).total_seconds()
    assert settings.batch_pause_min_s <= rest <= settings.batch_pause_max_s
    assert four.reason == Reason.READY  # four in the batch: the short delay only (already passed)
    with time_machine.travel(decision.send_at + datetime.timedelta(seconds=1), tick=False):
        after = decide(history(earlier_batch + batch, first=start), settings)
    assert after.may_send(timezone.now())


def test_warm_up_grows_the_daily_cap_day_by_day() -> None:
    caps = [warmup_cap(S, day) for day in range(1, S.warmup_days + 3)]
    assert caps[0] == S.warmup_start and caps[S.warmup_days - 1] == S.daily_cap and caps[-1] == S.daily_cap
    assert all(a < b for a, b in itertools.pairwise(caps[: S.warmup_days]))

    first = MORNING - datetime.timedelta(days=4)  # this is the number's fifth day
    with time_machine.travel(MORNING, tick=False):
        decision = decide(history([SendRecord(first)], first=first))
    assert decision.cap_today == warmup_cap(S, 5) > S.warmup_start
    no_warmup = PacingSettings(warmup_days=1)
    with time_machine.travel(MORNING, tick=False):
        assert decide(history([], first=None), no_warmup).cap_today == no_warmup.daily_cap


def test_daily_cap_waits_for_the_next_local_day() -> None:
    settings = PacingSettings(min_delay_s=1, max_delay_s=2, batch_size=1000, warmup_start=20)
    today = spaced(MORNING - datetime.timedelta(hours=1), 20, 60, replied=True)  # from 09:00 local, day one
    now = today[-1].at + datetime.timedelta(minutes=5)
    with time_machine.travel(now, tick=False):
        capped = decide(history(today), settings)
        nineteen = decide(history(today[:19]), settings)
    assert nineteen.may_send(now)
    assert capped.reason == Reason.DAILY_CAP and capped.sent_today == 20 and not capped.stop
    # midnight in São Paulo is 03:00 UTC
    assert capped.send_at == datetime.datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    with time_machine.travel(datetime.datetime(2026, 3, 3, 3, 0, 1, tzinfo=UTC), tick=False):
        next_day = decide(history(today), settings)
        assert next_day.may_send(timezone.now()) and next_day.sent_today == 0
    assert next_day.cap_today == warmup_cap(settings, 2) > 20  # and the cap grew


def test_auto_stop_on_failures_and_on_silence() -> None:
    start = MORNING - datetime.timedelta(hours=12)
    ok = spaced(start, 40, 60, replied=True)
    failing = spaced(start + datetime.timedelta(hours=1), 10, 60, outcome=Outcome.FAILED)
    with time_machine.travel(MORNING, tick=False):
        stopped = decide(history(ok + failing, first=start))
        fine = decide(history(ok + failing[:5], first=start))
    assert stopped.stop and stopped.reason == Reason.STOP_FAILURES and stopped.send_at is None
    assert stopped.failure_rate == pytest.approx(10 / 50) and not stopped.may_send(MORNING)
    assert not fine.stop  # 5 of 45: under the 15% threshold

    silent = spaced(start, 40, 60, replied=False)
    with time_machine.travel(MORNING, tick=False):
        unanswered = decide(history(silent, first=start))
        young = spaced(MORNING - datetime.timedelta(hours=1), 40, 60, replied=False)
        too_soon = decide(history(young, first=start))
    assert unanswered.stop and unanswered.reason == Reason.STOP_UNANSWERED and unanswered.unanswered_rate == 1.0
    assert not too_soon.stop  # sent within the last hour: they had no chance to answer yet

    resumed = ChannelHistory(key="t:1", recent=ok + failing, first_sent_at=start, judged_since=MORNING)
    with time_machine.travel(MORNING, tick=False):
        assert not decide(resumed).stop  # a person resumed: the old failures are not judged again


def test_rotation_picks_the_number_free_soonest_and_least_used() -> None:
    now = MORNING
    later = now + datetime.timedelta(seconds=40)

    def d(send_at: datetime.datetime | None, sent: int, cap: int = 100, stop: bool = False) -> Decision:
        return Decision(send_at, stop, Reason.READY, cap, sent)

    assert rotation_pick({1: d(later, 0), 2: d(now, 50)}, now) == 2  # free now beats free later
    assert rotation_pick({1: d(now, 60), 2: d(now - datetime.timedelta(hours=1), 10)}, now) == 2  # less used
    assert rotation_pick({1: d(None, 0, stop=True), 3: d(later, 99)}, now) == 3  # a stopped number is skipped
    assert rotation_pick({1: d(None, 0, stop=True)}, now) is None

    # driven by the policy: three numbers sending in turn never send twice inside one number's delay
    settings = PacingSettings(min_delay_s=30, max_delay_s=60, batch_size=1000, warmup_start=200)
    sends: dict[int, list[SendRecord]] = {1: [], 2: [], 3: []}
    clock = MORNING
    order = []
    with time_machine.travel(clock, tick=False) as traveller:
        for _ in range(30):
            decisions = {pk: decide(history(s, key=f"t:{pk}"), settings) for pk, s in sends.items()}
            pick = rotation_pick(decisions, timezone.now())
            assert pick is not None
            send_at = decisions[pick].send_at
            assert send_at is not None
            if send_at > timezone.now():
                traveller.move_to(send_at)
            sends[pick].append(SendRecord(timezone.now()))
            order.append(pick)
    assert {1, 2, 3} == set(order) and max(order.count(pk) for pk in (1, 2, 3)) <= 11
    for records in sends.values():
        gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(records)]
        assert all(gap >= settings.min_delay_s for gap in gaps)


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="min_delay_s"):
        PacingSettings(min_delay_s=60, max_delay_s=10)
    with pytest.raises(ValueError, match="warmup_start"):
        PacingSettings(warmup_start=500, daily_cap=100)
    with pytest.raises(ValueError, match="timezone-aware"), time_machine.travel(MORNING, tick=False):
        pacing_next(history=history([]), settings=S, now=datetime.datetime(2026, 3, 2, 10, 0))  # naive


@pytest.mark.django_db
def test_history_comes_from_the_channels_messages(in_tenant_a: Any) -> None:
    """The selector the dispatcher calls: today's count in the tenant's day, replies, failures, first send."""
    from inbox.models import Direction, Message, MessageStatus
    from inbox.services import channel_create
    from tests.messaging import open_conversation
    from whatsapp.models import QrPacing
    from whatsapp.selectors import pacing_history, pacing_settings_of, qr_pacing_decide
    from whatsapp.services import pacing_resume, pacing_save

    channel = channel_create(kind="whatsapp_web", name=f"QR {uuid.uuid4().hex[:4]}", phone_number="", credentials={})
    conversation = open_conversation(channel.pk, "+5511977771234")
    silent = open_conversation(channel.pk, "+5511977771235")

    def out(at: datetime.datetime, status: str, conv: Any = conversation) -> Message:
        stamp = {"failed_at": at} if status == MessageStatus.FAILED else {"sent_at": at}
        return Message.objects.create(
            conversation=conv,
            channel=channel,
            direction=Direction.OUTBOUND,
            status=status,
            body="oi",
            idempotency_key=uuid.uuid4().hex,
            **stamp,
        )

    yesterday = MORNING - datetime.timedelta(days=1)
    out(yesterday, MessageStatus.READ)
    out(MORNING - datetime.timedelta(hours=2), MessageStatus.DELIVERED)
    out(MORNING - datetime.timedelta(hours=1), MessageStatus.FAILED, silent)
    out(MORNING - datetime.timedelta(seconds=10), MessageStatus.SENT, silent)
    Message.objects.create(  # still waiting to be sent: not history yet
        conversation=conversation,
        channel=channel,
        direction=Direction.OUTBOUND,
        status=MessageStatus.QUEUED,
        idempotency_key=uuid.uuid4().hex,
    )
    reply = Message.objects.create(
        conversation=conversation,
        channel=channel,
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        body="opa",
        idempotency_key=uuid.uuid4().hex,
    )
    Message.objects.filter(pk=reply.pk).update(created_at=MORNING - datetime.timedelta(minutes=90))

    with time_machine.travel(MORNING, tick=False):
        settings = pacing_settings_of(channel=channel)
        assert settings == PacingSettings(timezone=in_tenant_a.timezone)  # no row: the defaults
        found = pacing_history(channel=channel, settings=settings, now=timezone.now())
        assert [(r.outcome, r.replied) for r in found.recent] == [
            (Outcome.SENT, True),
            (Outcome.SENT, True),
            (Outcome.FAILED, False),
            (Outcome.SENT, False),
        ]
        assert found.sent_today == 3 and found.first_sent_at == yesterday
        assert found.key.endswith(f":{channel.pk}")
        decision = qr_pacing_decide(channel=channel)
        assert decision.cap_today == warmup_cap(settings, 2) and decision.reason == Reason.DELAY

        pacing_save(channel=channel, daily_cap=3, warmup_start=3, warmup_days=1)
        assert qr_pacing_decide(channel=channel).reason == Reason.DAILY_CAP
        pacing_save(channel=channel, stop_failure_rate="0.2", daily_cap=300)
        strict = pacing_settings_of(channel=channel)
        assert (strict.stop_failure_rate, strict.daily_cap) == (0.2, 300)
        pacing_resume(channel=channel)
        assert QrPacing.objects.get(channel=channel).judged_since == timezone.now()


def test_pacing_page_explains_defaults_saves_refuses_nonsense_and_resumes(
    in_tenant_a: Any, tenant_a: Any, owner_a: Any, agent_a: Any
) -> None:
    from inbox.models import Direction, Message, MessageStatus
    from inbox.services import channel_create
    from tests.conftest import tenant_client
    from tests.messaging import open_conversation
    from whatsapp.models import QrPacing

    channel = channel_create(kind="whatsapp_web", name=f"QR {uuid.uuid4().hex[:4]}", phone_number="", credentials={})
    url = f"/channels/{channel.pk}/qr/pacing/"
    manager = tenant_client(tenant_a, owner_a, lang="en")
    page = manager.get(url).content.decode()
    assert "WhatsApp bans accounts that send like machines" in page and "Default 25." in page
    assert "Ready: the next message may go now." in page and "0 of 20 messages sent today." in page
    assert tenant_client(tenant_a, agent_a, lang="en").get(url).status_code == 403  # managers only

    fields = {
        "min_delay_s": 40,
        "max_delay_s": 90,
        "batch_size": 20,
        "batch_pause_min_s": 900,
        "batch_pause_max_s": 1800,
        "warmup_start": 10,
        "warmup_days": 21,
        "daily_cap": 150,
        "stop_failure_rate": "0.10",
        "stop_unanswered_rate": "0.95",
        "stop_window": 40,
        "reply_wait_s": 7200,
    }
    refused = manager.post(url, {**fields, "max_delay_s": 10})
    assert refused.status_code == 400
    assert "The longest pause between messages cannot be shorter than the shortest." in refused.content.decode()
    assert not QrPacing.objects.filter(channel=channel).exists()
    assert manager.post(url, fields).status_code == 302
    saved = QrPacing.objects.get(channel=channel)
    assert (saved.min_delay_s, saved.daily_cap, float(saved.stop_failure_rate)) == (40, 150, 0.10)

    conversation = open_conversation(channel.pk, "+5511977775555")
    for _ in range(20):  # twenty failures in a row: the number stops
        Message.objects.create(
            conversation=conversation,
            channel=channel,
            direction=Direction.OUTBOUND,
            status=MessageStatus.FAILED,
            failed_at=timezone.now(),
            idempotency_key=uuid.uuid4().hex,
        )
    stopped = manager.get(url).content.decode()
    assert "Stopped: too many of the last sends failed." in stopped and 'data-testid="pacing-resume"' in stopped
    assert manager.post(url, {"action": "resume"}).status_code == 302
    assert "Stopped" not in manager.get(url).content.decode()
