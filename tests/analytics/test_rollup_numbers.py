"""Every dashboard number, computed again straight from the raw tables (in Python, by a different route
than the rollups' SQL) on seeded history, must equal what the dashboard reads from the rollups."""

from __future__ import annotations

import math
import statistics
from datetime import timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Role
from ai.models import BotReply, ConversationBot
from analytics.demo import demo_history_fill
from analytics.models import MessageHour, Resolution
from analytics.rollups import response_bucket, rollups_backfill
from analytics.selectors import (
    Filters,
    dashboard_agents,
    dashboard_calls,
    dashboard_campaigns,
    dashboard_funnel,
    dashboard_series,
    dashboard_summary,
    weighted_median,
)
from campaigns.models import Cadence, Enrollment
from crm.models import Contact, ContactConsent
from inbox.models import Channel, Conversation, Message
from kanban.models import Card, CardMove, Stage
from kanban.services import board_create
from tenants.models import Tenant
from tests.support import make_member
from voice.models import Call

pytestmark = pytest.mark.django_db
TZ = "America/Sao_Paulo"
LEFT = ("sent", "delivered", "read")


@pytest.fixture
def seeded(in_tenant_a: Tenant) -> dict[str, Any]:
    Channel.objects.create(kind="sms_twilio", name="SMS seed", phone_number="+5511900001111", credentials={"k": "v"})
    Channel.objects.create(kind="whatsapp_cloud", name="WA seed", phone_number="+5511900002222", credentials={})
    agents = [make_member(in_tenant_a, f"seed-{n}@alpha.test", Role.AGENT) for n in range(3)]
    board = board_create(name="Seed board")
    assert demo_history_fill(agents=agents)
    # A cadence step's message: counted under its cadence, not a campaign.
    conversation = Conversation.objects.order_by("pk").first()
    assert conversation is not None
    cadence = Cadence.objects.create(name="Boas-vindas", channel=conversation.channel)
    enrollment = Enrollment.objects.create(cadence=cadence, contact=conversation.contact)
    Message.objects.create(
        conversation=conversation, channel=conversation.channel, direction="out", body="Bem-vindo!",
        status="delivered", sent_at=timezone.now(), delivered_at=timezone.now(),
        idempotency_key=f"cadence:{enrollment.pk}:0",
    )  # fmt: skip
    rollups_backfill()
    return {"agents": agents, "board": board, "cadence": cadence}


def _period(days: int = 14, **kw: Any) -> Filters:
    today = timezone.now().astimezone(Filters(start=timezone.now().date(), end=timezone.now().date()).zone).date()
    return Filters(start=today - timedelta(days=days - 1), end=today, tz=TZ, **kw)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _raw_samples() -> list[dict[str, Any]]:
    """Response samples walked message by message: a reply by a person ends the wait that began with
    the first inbound message after the previous outbound one."""
    samples = []
    rows = (
        Message.objects.filter(direction__in=["in", "out"])
        .order_by("conversation_id", "created_at", "id")
        .values("id", "conversation_id", "channel_id", "direction", "author_id", "created_at")
    )
    for _conversation_id, messages in groupby(rows, key=lambda r: r["conversation_id"]):
        waiting, answered_by_person = None, 0
        for m in messages:
            if m["direction"] == "in":
                waiting = waiting or m["created_at"]
                continue
            if waiting is not None and m["author_id"] is not None:
                answered_by_person += 1
                seconds = max(0, math.floor((m["created_at"] - waiting).total_seconds()))
                samples.append({**m, "seconds": seconds, "first": answered_by_person == 1})
            waiting = None
    return samples


def _bucketed_median(seconds: list[int]) -> float | None:
    """The median as the dashboard keeps it (waits in ~5% buckets), checked close to the exact one."""
    if not seconds:
        return None
    histogram: dict[int, int] = {}
    for value in seconds:
        histogram[response_bucket(value)] = histogram.get(response_bucket(value), 0) + 1
    median = weighted_median(histogram)
    assert median is not None
    exact = statistics.median(seconds)
    assert abs(median - exact) <= 0.05 * exact + 1, (median, exact)
    return round(median, 1)


def _raw_numbers(f: Filters) -> dict[str, Any]:
    start, end = f.bounds
    messages = Message.objects.filter(created_at__gte=start, created_at__lt=end, direction__in=["in", "out"])
    conversations = Conversation.objects.filter(created_at__gte=start, created_at__lt=end)
    resolutions = Resolution.objects.filter(resolved_at__gte=start, resolved_at__lt=end)
    if f.channel_id:
        messages = messages.filter(channel_id=f.channel_id)
        conversations = conversations.filter(channel_id=f.channel_id)
        resolutions = resolutions.filter(channel_id=f.channel_id)
    if f.agent_id:
        messages = messages.filter(author_id=f.agent_id)
        conversations = conversations.filter(assignee_id=f.agent_id)
        resolutions = resolutions.filter(agent_id=f.agent_id)
    if f.campaign_id:
        messages = messages.filter(idempotency_key__startswith=f"campaign:{f.campaign_id}:")
    rows = list(messages.values("direction", "status", "sent_at", "delivered_at", "read_at"))
    out = [r for r in rows if r["direction"] == "out"]
    sent = sum(1 for r in out if r["sent_at"] or r["status"] in LEFT)
    delivered = sum(1 for r in out if r["delivered_at"] or r["status"] in ("delivered", "read"))
    read = sum(1 for r in out if r["read_at"] or r["status"] == "read")
    failed = sum(1 for r in out if r["status"] == "failed")
    samples = [
        s
        for s in _raw_samples()
        if start <= s["created_at"] < end
        and (not f.channel_id or s["channel_id"] == f.channel_id)
        and (not f.agent_id or s["author_id"] == f.agent_id)
    ]
    firsts = [s["seconds"] for s in samples if s["first"]]
    calls = list(Call.objects.filter(created_at__gte=start, created_at__lt=end))
    answered = [c for c in calls if c.status == "ended" and (c.duration_ms or 0) > 0]
    talk_ms = sum(c.duration_ms or 0 for c in calls if c.status == "ended")
    moves = CardMove.objects.filter(created_at__gte=start, created_at__lt=end).select_related("to_stage", "card")
    if f.board_id:
        moves = moves.filter(to_stage__board_id=f.board_id)
    won = [mv for mv in moves if mv.to_stage and mv.to_stage.kind == "won"]
    opt_outs = ContactConsent.objects.filter(
        changed_at__gte=start, changed_at__lt=end, status__in=["opted_out", "marketing_opted_out"]
    ).count()
    mean = statistics.mean
    bot_answered = set(BotReply.objects.values_list("message__conversation_id", flat=True))
    person_answered = set(
        Message.objects.filter(direction="out", author__isnull=False).values_list("conversation_id", flat=True)
    )
    handed_off = set(
        ConversationBot.objects.filter(handed_off_at__isnull=False).values_list("conversation_id", flat=True)
    )
    contained = sum(
        1
        for r in resolutions
        if r.conversation_id in bot_answered
        and r.conversation_id not in person_answered
        and r.conversation_id not in handed_off
    )
    return {
        "messages_received": sum(1 for r in rows if r["direction"] == "in"),
        "messages_sent": sent,
        "messages_delivered": delivered,
        "messages_read": read,
        "messages_failed": failed,
        "delivered_rate": _ratio(delivered, sent),
        "read_rate": _ratio(read, sent),
        "failed_rate": _ratio(failed, len(out)),
        "conversations_opened": conversations.count(),
        "conversations_resolved": resolutions.count(),
        "conversations_contained": contained,
        "containment_rate": _ratio(contained, resolutions.count()),
        "responses": len(samples),
        "first_response_avg_s": round(mean(firsts), 1) if firsts else None,
        "response_avg_s": round(mean(s["seconds"] for s in samples), 1) if samples else None,
        "response_median_s": _bucketed_median([s["seconds"] for s in samples]),
        "first_responses": len(firsts),
        "opt_outs": opt_outs,
        "leads_won": len(won),
        "value_won": float(sum((mv.card.value for mv in won), Decimal("0"))),
        "calls": len(calls),
        "calls_answered": len(answered),
        "call_answer_rate": _ratio(len(answered), len(calls)),
        "call_avg_duration_s": round(talk_ms / len(answered) / 1000, 1) if answered else None,
        "call_positive_rate": _ratio(sum(1 for c in calls if c.sentiment.lower() == "positive"), len(answered)),
        "call_success_rate": _ratio(sum(1 for c in calls if c.successful), len(answered)),
        "call_cost_usd": round(float(sum((c.cost_cents or Decimal("0")) for c in calls)) / 100, 2),
    }


def _values(f: Filters) -> tuple[dict[str, Any], dict[str, Any]]:
    kpis = dashboard_summary(f)["kpis"]
    return {k: v["value"] for k, v in kpis.items()}, {k: v["previous"] for k, v in kpis.items()}


def test_the_kpis_of_a_period_and_the_one_before_match_the_raw_tables(seeded: dict[str, Any]) -> None:
    f = _period()
    now, before = _values(f)
    assert now == _raw_numbers(f)
    assert before == _raw_numbers(f.previous())
    # the seed is not empty where it matters: a comparison of zeros proves nothing
    assert now["messages_received"] > 20 and now["responses"] > 10 and now["calls"] > 5 and now["leads_won"] > 0
    assert now["conversations_resolved"] > 5 and 0 < now["conversations_contained"] < now["conversations_resolved"]
    assert before["messages_sent"] > 20 and now["response_median_s"]
    change = dashboard_summary(f)["kpis"]["messages_received"]["change"]
    assert change == round((now["messages_received"] - before["messages_received"]) / before["messages_received"], 4)


def test_filters_by_channel_agent_campaign_and_board_match_the_raw_tables(seeded: dict[str, Any]) -> None:
    channel = Channel.objects.get(name="SMS seed")
    agent = seeded["agents"][1]
    campaign_id = int(
        Message.objects.filter(idempotency_key__regex=r"^campaign:[0-9]+:").values_list("idempotency_key", flat=True)[0]
        .split(":")[1]
    )  # fmt: skip
    for f in (
        _period(28, channel_id=channel.pk),
        _period(28, agent_id=agent.pk),
        _period(28, campaign_id=campaign_id),
        _period(28, board_id=seeded["board"].pk),
    ):
        assert _values(f)[0] == _raw_numbers(f), f
    assert _values(_period(28, agent_id=agent.pk))[0]["responses"] > 0


def test_series_tables_and_funnel_match_the_raw_tables(seeded: dict[str, Any]) -> None:
    f = _period(28)
    start, end = f.bounds
    zone = f.zone
    # series: per local day, what came in and what was opened
    series = dashboard_series(f)
    assert len(series["points"]) == 28
    by_day = {p["t"][:10]: p for p in series["points"]}
    received: dict[str, int] = {}
    for at in Message.objects.filter(direction="in", created_at__gte=start, created_at__lt=end).values_list(
        "created_at", flat=True
    ):
        day = at.astimezone(zone).date().isoformat()
        received[day] = received.get(day, 0) + 1
    assert {d: p["received"] for d, p in by_day.items() if p["received"]} == received
    assert sum(p["opened"] for p in series["points"]) == _raw_numbers(f)["conversations_opened"]
    weekly = dashboard_series(Filters(start=f.start, end=f.end, tz=TZ, interval="week"))
    assert sum(p["sent"] for p in weekly["points"]) == _raw_numbers(f)["messages_sent"]
    hourly = dashboard_series(Filters(start=f.end, end=f.end, tz=TZ, interval="hour"))
    assert len(hourly["points"]) == 24
    # per agent
    samples = [s for s in _raw_samples() if start <= s["created_at"] < end]
    for row in dashboard_agents(f):
        mine = [s for s in samples if s["author_id"] == row["agent_id"]]
        replies = Message.objects.filter(
            direction="out", author_id=row["agent_id"], created_at__gte=start, created_at__lt=end
        ).count()
        assert row["replies"] == replies
        assert row["responses"] == len(mine)
        assert (
            row["conversations_handled"]
            == Conversation.objects.filter(
                assignee_id=row["agent_id"], created_at__gte=start, created_at__lt=end
            ).count()
        )
        assert row["response_median_s"] == _bucketed_median([s["seconds"] for s in mine])
        first = [s["seconds"] for s in mine if s["first"]]
        assert row["first_response_avg_s"] == (round(statistics.mean(first), 1) if first else None)
        assert (
            row["resolved"]
            == Resolution.objects.filter(agent_id=row["agent_id"], resolved_at__gte=start, resolved_at__lt=end).count()
        )
    assert len(dashboard_agents(f)) >= 3
    # campaigns and cadences
    rows = {(r["kind"], r["id"]): r for r in dashboard_campaigns(f)}
    cadence_row = rows[("cadence", seeded["cadence"].pk)]
    assert (cadence_row["sent"], cadence_row["delivered"], cadence_row["read"]) == (1, 1, 0)
    for (kind, pk), row in rows.items():
        if kind != "campaign":
            continue
        raw = Message.objects.filter(
            idempotency_key__startswith=f"campaign:{pk}:", created_at__gte=start, created_at__lt=end
        )
        assert row["sent"] == sum(1 for m in raw if m.sent_at or m.status in LEFT)
        assert row["failed"] == raw.filter(status="failed").count()
        assert row["read"] == raw.exclude(read_at=None).count()
    # the funnel of the seeded board
    funnel = dashboard_funnel(Filters(start=f.start, end=f.end, tz=TZ, board_id=seeded["board"].pk))
    stages = list(Stage.objects.filter(board=seeded["board"]).order_by("rank", "pk"))
    assert [s["stage_id"] for s in funnel["stages"]] == [s.pk for s in stages]
    for stage, row in zip(stages, funnel["stages"], strict=True):
        assert row["leads_now"] == Card.objects.filter(stage=stage).count()
        assert (
            row["entered"] == CardMove.objects.filter(to_stage=stage, created_at__gte=start, created_at__lt=end).count()
        )
    assert sum(r["entered"] for r in funnel["stages"]) > 0
    # call outcomes
    outcomes = dashboard_calls(f)
    calls = Call.objects.filter(created_at__gte=start, created_at__lt=end)
    assert sum(r["calls"] for r in outcomes) == calls.count()
    for row in outcomes:
        assert row["calls"] == calls.filter(status=row["status"], disconnection_reason=row["outcome"]).count()


def test_the_backfill_is_idempotent_and_the_demo_seed_runs_once(seeded: dict[str, Any]) -> None:
    before = list(MessageHour.objects.order_by("hour", "channel_id", "agent_id", "campaign_id").values())
    rollups_backfill()
    after = list(MessageHour.objects.order_by("hour", "channel_id", "agent_id", "campaign_id").values())
    strip = [{k: v for k, v in row.items() if k != "id"} for row in before]
    assert strip == [{k: v for k, v in row.items() if k != "id"} for row in after]
    contacts = Contact.objects.count()
    assert demo_history_fill(agents=seeded["agents"]) is False
    assert Contact.objects.count() == contacts
