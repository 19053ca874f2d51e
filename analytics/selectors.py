"""The dashboard's numbers, read from the rollup tables only (never the raw messages).

A period is whole days in the tenant's time zone; the previous period is as many days just before.
Filters apply where the rollup has that dimension: channel (messages, conversations, responses),
campaign (messages), agent (messages, conversations, responses), board (leads).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _

from .models import CallHour, ConversationHour, LeadMoveHour, MessageHour, OptOutHour, ResponseDay

INTERVALS = ("hour", "day", "week")
MAX_DAYS = 400


@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    tz: str = "America/Sao_Paulo"
    interval: str = "day"
    channel_id: int | None = None
    campaign_id: int | None = None
    agent_id: int | None = None
    board_id: int | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """The period in UTC: from the start day's midnight to the midnight after the end day."""
        zone = self.zone
        return (
            datetime.combine(self.start, time.min, tzinfo=zone),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=zone),
        )

    def previous(self) -> Filters:
        days = (self.end - self.start).days + 1
        return replace(self, start=self.start - timedelta(days=days), end=self.start - timedelta(days=1))


def filters_default(*, tz: str, days: int = 30) -> Filters:
    today = timezone.now().astimezone(ZoneInfo(tz)).date()
    return Filters(start=today - timedelta(days=days - 1), end=today, tz=tz)


def filters_parse(params: Any, *, tz: str) -> Filters:
    """Filters from query parameters (start, end as YYYY-MM-DD in the tenant's zone; interval; channel,
    campaign, agent, board ids). Raises ValidationError with a message the user can act on."""
    default = filters_default(tz=tz)
    try:
        start = parse_date(params.get("start") or "") or default.start
        end = parse_date(params.get("end") or "") or default.end
    except ValueError as exc:
        raise ValidationError(_("Dates are written as YYYY-MM-DD.")) from exc
    if end < start:
        raise ValidationError(_("The end date is before the start date."))
    if (end - start).days >= MAX_DAYS:
        raise ValidationError(_("Choose at most %(days)s days.") % {"days": MAX_DAYS})
    interval = params.get("interval") or "day"
    if interval not in INTERVALS:
        raise ValidationError(_("The interval is hour, day or week."))
    if interval == "hour" and (end - start).days > 31:
        raise ValidationError(_("Hourly series cover at most 31 days; choose day or week."))
    ids: dict[str, int | None] = {}
    for name in ("channel", "campaign", "agent", "board"):
        raw = str(params.get(name) or "").strip()
        if raw and not raw.isdigit():
            raise ValidationError(_("%(name)s must be an id.") % {"name": name})
        ids[f"{name}_id"] = int(raw) if raw else None
    return Filters(start=start, end=end, tz=tz, interval=interval, **ids)


def _in_period(qs: QuerySet[Any], f: Filters, column: str = "hour") -> QuerySet[Any]:
    start, end = f.bounds
    return qs.filter(**{f"{column}__gte": start, f"{column}__lt": end})


def _messages(f: Filters) -> QuerySet[MessageHour]:
    qs = _in_period(MessageHour.objects.all(), f)
    if f.channel_id:
        qs = qs.filter(channel_id=f.channel_id)
    if f.campaign_id:
        qs = qs.filter(campaign_id=f.campaign_id)
    if f.agent_id:
        qs = qs.filter(agent_id=f.agent_id)
    return qs


def _conversations(f: Filters) -> QuerySet[ConversationHour]:
    qs = _in_period(ConversationHour.objects.all(), f)
    if f.channel_id:
        qs = qs.filter(channel_id=f.channel_id)
    if f.agent_id:
        qs = qs.filter(agent_id=f.agent_id)
    return qs


def weighted_median(histogram: dict[int, int]) -> float | None:
    """The median of a histogram {value: count}, as percentile_cont(0.5) would give on the values."""
    total = sum(histogram.values())
    if not total:
        return None
    k1, k2 = (total + 1) // 2, total // 2 + 1
    seen, low, high = 0, None, None
    for value in sorted(histogram):
        seen += histogram[value]
        if low is None and seen >= k1:
            low = value
        if seen >= k2:
            high = value
            break
    assert low is not None and high is not None
    return (low + high) / 2


@dataclass
class ResponseStats:
    responses: int = 0
    seconds: int = 0
    firsts: int = 0
    first_seconds: int = 0
    histogram: dict[int, int] | None = None

    def add(self, *, is_first: bool, bucket: int, n: int, total: int) -> None:
        self.responses += n
        self.seconds += total
        if is_first:
            self.firsts += n
            self.first_seconds += total
        self.histogram = self.histogram or {}
        self.histogram[bucket] = self.histogram.get(bucket, 0) + n

    def numbers(self) -> dict[str, Any]:
        median = weighted_median(self.histogram or {})
        return {
            "responses": self.responses,
            "first_responses": self.firsts,
            "first_response_avg_s": round(self.first_seconds / self.firsts, 1) if self.firsts else None,
            "response_avg_s": round(self.seconds / self.responses, 1) if self.responses else None,
            "response_median_s": round(median, 1) if median is not None else None,
        }


def _response_stats(f: Filters, *, by_agent: bool = False) -> dict[int | None, ResponseStats]:
    """Answers of the period's days from the daily histograms: {agent id (or None): stats}."""
    qs = ResponseDay.objects.filter(day__gte=f.start, day__lte=f.end)
    if f.channel_id:
        qs = qs.filter(channel_id=f.channel_id)
    if f.agent_id:
        qs = qs.filter(agent_id=f.agent_id)
    keys = ["agent_id", "is_first", "bucket"] if by_agent else ["is_first", "bucket"]
    stats: dict[int | None, ResponseStats] = {}
    for row in qs.values(*keys).annotate(n=Sum("responses"), total=Sum("seconds_sum")).order_by():
        key = row["agent_id"] if by_agent else None
        stats.setdefault(key, ResponseStats()).add(
            is_first=row["is_first"], bucket=row["bucket"], n=row["n"] or 0, total=row["total"] or 0
        )
    return stats


def _calls(f: Filters) -> QuerySet[CallHour]:
    return _in_period(CallHour.objects.all(), f)


def _leads(f: Filters) -> QuerySet[LeadMoveHour]:
    qs = _in_period(LeadMoveHour.objects.all(), f)
    if f.board_id:
        qs = qs.filter(board_id=f.board_id)
    return qs


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _period_numbers(f: Filters) -> dict[str, float | None]:
    m = _messages(f).aggregate(
        received=Sum("inbound"),
        outbound=Sum("outbound"),
        sent=Sum("sent"),
        delivered=Sum("delivered"),
        read=Sum("read"),
        failed=Sum("failed"),
    )
    m = {k: v or 0 for k, v in m.items()}
    c = _conversations(f).aggregate(opened=Sum("opened"), resolved=Sum("resolved"), contained=Sum("contained"))
    responses = _response_stats(f).get(None, ResponseStats()).numbers()
    calls = _calls(f).aggregate(
        calls=Sum("calls"),
        answered=Sum("answered"),
        duration=Sum("duration_ms"),
        positive=Sum("positive"),
        successful=Sum("successful"),
        cost=Sum("cost_cents"),
    )
    leads = _leads(f).aggregate(won=Sum("won"), value=Sum("won_value"))
    opt_outs = _in_period(OptOutHour.objects.all(), f).aggregate(n=Sum("opted_out"))["n"] or 0
    answered = calls["answered"] or 0
    return {
        "messages_received": m["received"],
        "messages_sent": m["sent"],
        "messages_delivered": m["delivered"],
        "messages_read": m["read"],
        "messages_failed": m["failed"],
        "delivered_rate": _ratio(m["delivered"], m["sent"]),
        "read_rate": _ratio(m["read"], m["sent"]),
        "failed_rate": _ratio(m["failed"], m["outbound"]),
        "conversations_opened": c["opened"] or 0,
        "conversations_resolved": c["resolved"] or 0,
        "conversations_contained": c["contained"] or 0,
        "containment_rate": _ratio(c["contained"] or 0, c["resolved"] or 0),
        "responses": responses["responses"],
        "first_response_avg_s": responses["first_response_avg_s"],
        "response_avg_s": responses["response_avg_s"],
        "response_median_s": responses["response_median_s"],
        "first_responses": responses["first_responses"],
        "opt_outs": opt_outs,
        "leads_won": leads["won"] or 0,
        "value_won": float(leads["value"] or Decimal("0")),
        "calls": calls["calls"] or 0,
        "calls_answered": answered,
        "call_answer_rate": _ratio(answered, calls["calls"] or 0),
        "call_avg_duration_s": round((calls["duration"] or 0) / answered / 1000, 1) if answered else None,
        "call_positive_rate": _ratio(calls["positive"] or 0, answered),
        "call_success_rate": _ratio(calls["successful"] or 0, answered),
        "call_cost_usd": round(float(calls["cost"] or 0) / 100, 2),
    }


def dashboard_summary(f: Filters) -> dict[str, Any]:
    """Every KPI of the period with the previous period's value and the relative change."""
    now, before = _period_numbers(f), _period_numbers(f.previous())
    kpis = {}
    for name, value in now.items():
        prev = before[name]
        change = None
        if value is not None and prev:
            change = round((float(value) - float(prev)) / float(prev), 4)
        kpis[name] = {"value": value, "previous": prev, "change": change}
    previous = f.previous()
    return {
        "period": {"start": f.start.isoformat(), "end": f.end.isoformat(), "tz": f.tz},
        "previous_period": {"start": previous.start.isoformat(), "end": previous.end.isoformat()},
        "kpis": kpis,
    }


def _buckets(f: Filters) -> list[datetime]:
    start, end = f.bounds
    zone = f.zone
    at = start.astimezone(zone)
    if f.interval == "week":
        at = at - timedelta(days=at.weekday())
    out = []
    while at < end:
        out.append(at)
        if f.interval == "hour":
            at = (at.astimezone(ZoneInfo("UTC")) + timedelta(hours=1)).astimezone(zone)
        else:
            step = timedelta(days=7 if f.interval == "week" else 1)
            at = datetime.combine(at.date() + step, time.min, tzinfo=zone)
    return out


def dashboard_series(f: Filters) -> dict[str, Any]:
    """Counts per hour, day or week (in the tenant's time zone), every bucket of the period present."""
    bucket = Trunc("hour", f.interval, tzinfo=f.zone)
    rows: dict[datetime, dict[str, int]] = {}
    fields = ("received", "sent", "delivered", "read", "failed", "opened", "resolved", "calls")

    def add(qs: QuerySet[Any], **sums: Any) -> None:
        for row in qs.annotate(t=bucket).values("t").annotate(**sums).order_by():
            target = rows.setdefault(row["t"], dict.fromkeys(fields, 0))
            for name in sums:
                target[name] += row[name] or 0

    add(
        _messages(f),
        received=Sum("inbound"),
        sent=Sum("sent"),
        delivered=Sum("delivered"),
        read=Sum("read"),
        failed=Sum("failed"),
    )
    add(_conversations(f), opened=Sum("opened"), resolved=Sum("resolved"))
    add(_calls(f), calls=Sum("calls"))
    points = []
    for at in _buckets(f):
        values = rows.get(at, dict.fromkeys(fields, 0))
        points.append({"t": at.isoformat(), **values})
    return {"interval": f.interval, "tz": f.tz, "fields": list(fields), "points": points}


def dashboard_agents(f: Filters) -> list[dict[str, Any]]:
    """Per team member: replies, conversations answered, resolved, first and usual response times."""
    from accounts.models import User

    responses = _response_stats(f, by_agent=True)
    replies = dict(
        _messages(f)
        .filter(agent_id__isnull=False)
        .values("agent_id")
        .annotate(n=Sum("outbound"))
        .values_list("agent_id", "n")
    )
    resolved = dict(
        _conversations(f)
        .filter(agent_id__isnull=False)
        .values("agent_id")
        .annotate(n=Sum("resolved"))
        .values_list("agent_id", "n")
    )
    handled = dict(
        _conversations(f)
        .filter(agent_id__isnull=False)
        .values("agent_id")
        .annotate(n=Sum("opened"))
        .values_list("agent_id", "n")
    )
    ids: set[int] = {int(i) for i in (set(responses) | set(replies) | set(resolved)) if i is not None}
    names = {u.pk: (u.get_full_name() or u.email) for u in User.objects.filter(pk__in=ids)}
    rows = []
    for agent_id in ids:
        numbers = responses.get(agent_id, ResponseStats()).numbers()
        rows.append(
            {
                "agent_id": agent_id,
                "agent": names.get(agent_id, f"#{agent_id}"),
                "replies": replies.get(agent_id, 0) or 0,
                "conversations_handled": handled.get(agent_id, 0) or 0,  # assigned to them, opened in the period
                "resolved": resolved.get(agent_id, 0) or 0,
                "responses": numbers["responses"],
                "first_response_avg_s": numbers["first_response_avg_s"],
                "response_avg_s": numbers["response_avg_s"],
                "response_median_s": numbers["response_median_s"],
            }
        )
    return sorted(rows, key=lambda r: (-r["replies"], r["agent"]))


def dashboard_funnel(f: Filters) -> dict[str, Any]:
    """A board's stages in order: leads there now, leads that entered in the period, conversion from the
    stage before, and the value won."""
    from kanban.models import Board, Card, Stage

    board = Board.objects.filter(pk=f.board_id).first() if f.board_id else Board.objects.order_by("pk").first()
    if board is None:
        return {"board": None, "stages": [], "won": 0, "value_won": 0.0}
    f = replace(f, board_id=board.pk)
    stages = list(Stage.objects.filter(board=board).order_by("rank", "pk"))
    now: dict[int, Any] = {
        row["stage_id"]: row
        for row in Card.objects.filter(board=board).values("stage_id").annotate(n=Count("pk"), value=Sum("value"))
    }
    entered = dict(_leads(f).values("to_stage_id").annotate(n=Sum("moves")).values_list("to_stage_id", "n"))
    rows, previous = [], None
    for stage in stages:
        count = entered.get(stage.pk, 0) or 0
        rows.append(
            {
                "stage_id": stage.pk,
                "stage": stage.name,
                "kind": stage.kind,
                "leads_now": now.get(stage.pk, {}).get("n", 0),
                "value_now": float(now.get(stage.pk, {}).get("value") or 0),
                "entered": count,
                "conversion": _ratio(count, previous) if previous is not None else None,
            }
        )
        if stage.kind == "open":
            previous = count
    totals = _leads(f).aggregate(won=Sum("won"), value=Sum("won_value"))
    return {
        "board": {"id": board.pk, "name": board.name},
        "stages": rows,
        "won": totals["won"] or 0,
        "value_won": float(totals["value"] or 0),
    }


def dashboard_campaigns(f: Filters) -> list[dict[str, Any]]:
    """Campaign and cadence results in the period: sent, delivered, read, failed and their rates."""
    from campaigns.models import Cadence, Campaign

    sums = {
        "sent": Sum("sent"),
        "delivered": Sum("delivered"),
        "read": Sum("read"),
        "failed": Sum("failed"),
        "outbound": Sum("outbound"),
    }
    qs = _messages(f)
    by_campaign: Any = qs.filter(campaign_id__isnull=False).values("campaign_id").annotate(**sums)
    by_cadence: Any = qs.filter(cadence_id__isnull=False).values("cadence_id").annotate(**sums)
    campaign_names = dict(Campaign.objects.values_list("pk", "name"))
    cadence_names = dict(Cadence.objects.values_list("pk", "name"))
    rows = []
    for kind, found, key, names in (
        ("campaign", by_campaign, "campaign_id", campaign_names),
        ("cadence", by_cadence, "cadence_id", cadence_names),
    ):
        for row in found:
            rows.append(
                {
                    "kind": kind,
                    "id": row[key],
                    "name": names.get(row[key], f"#{row[key]}"),
                    "sent": row["sent"] or 0,
                    "delivered": row["delivered"] or 0,
                    "read": row["read"] or 0,
                    "failed": row["failed"] or 0,
                    "delivered_rate": _ratio(row["delivered"] or 0, row["sent"] or 0),
                    "read_rate": _ratio(row["read"] or 0, row["sent"] or 0),
                }
            )
    return sorted(rows, key=lambda r: (-r["sent"], r["kind"], r["id"]))


def dashboard_calls(f: Filters) -> list[dict[str, Any]]:
    """Voice calls by outcome (status and disconnection reason)."""
    rows = (
        _calls(f)
        .values("status", "outcome")
        .annotate(
            calls=Sum("calls"),
            answered=Sum("answered"),
            duration=Sum("duration_ms"),
            positive=Sum("positive"),
            negative=Sum("negative"),
            successful=Sum("successful"),
            cost=Sum("cost_cents"),
        )
        .order_by("-calls", "status", "outcome")
    )
    from voice.models import CallStatus

    labels = dict(CallStatus.choices)
    return [
        {
            "status": row["status"],
            "status_label": str(labels.get(row["status"], row["status"])),
            "outcome": row["outcome"],
            "calls": row["calls"],
            "answered": row["answered"],
            "avg_duration_s": round(row["duration"] / row["answered"] / 1000, 1) if row["answered"] else None,
            "positive": row["positive"],
            "negative": row["negative"],
            "successful": row["successful"],
            "cost_usd": round(float(row["cost"] or 0) / 100, 2),
        }
        for row in rows
    ]


def today_counters(tz: str | None = None) -> dict[str, Any]:
    """Today's running totals (tenant's day), for the live strip on the dashboard."""
    from tenants.selectors import tenant_current

    zone = tz or tenant_current().timezone
    today = timezone.now().astimezone(ZoneInfo(zone)).date()
    f = Filters(start=today, end=today, tz=zone)
    m = _messages(f).aggregate(received=Sum("inbound"), sent=Sum("sent"))
    c = _conversations(f).aggregate(opened=Sum("opened"), resolved=Sum("resolved"))
    calls = _calls(f).aggregate(calls=Sum("calls"))
    return {
        "date": today.isoformat(),
        "messages_received": m["received"] or 0,
        "messages_sent": m["sent"] or 0,
        "conversations_opened": c["opened"] or 0,
        "conversations_resolved": c["resolved"] or 0,
        "calls": calls["calls"] or 0,
    }


def tenant_usage(schema_name: str, *, days: int = 30) -> dict[str, Any]:
    """One tenant's usage for the superadmin: messages and voice minutes of the last `days`, contacts now.
    Reads that tenant's rollups by schema-qualified name (the admin runs in the public schema)."""
    since = timezone.now() - timedelta(days=days)
    quoted = connection.ops.quote_name(schema_name)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(sum(inbound), 0), coalesce(sum(outbound), 0) FROM {quoted}.analytics_messagehour"  # noqa: S608
            " WHERE hour >= %s",
            [since],
        )
        inbound, outbound = cursor.fetchone()
        cursor.execute(
            f"SELECT coalesce(sum(duration_ms), 0), coalesce(sum(calls), 0) FROM {quoted}.analytics_callhour"  # noqa: S608
            " WHERE hour >= %s",
            [since],
        )
        duration_ms, calls = cursor.fetchone()
        cursor.execute(f"SELECT count(*) FROM {quoted}.crm_contact WHERE erased_at IS NULL")  # noqa: S608
        (contacts,) = cursor.fetchone()
    return {
        "messages_in": int(inbound),
        "messages_out": int(outbound),
        "contacts": int(contacts),
        "calls": int(calls),
        "voice_minutes": round(int(duration_ms) / 60000, 1),
    }


def dashboard_leads(f: Filters) -> dict[str, int]:
    """Leads of the period from the move rollup: new (a card made, its first move has no stage before),
    moved between stages, and won."""
    from django.db.models import Q

    totals = _leads(f).aggregate(
        new=Sum("moves", filter=Q(from_stage_id__isnull=True)),
        moved=Sum("moves", filter=Q(from_stage_id__isnull=False)),
        won=Sum("won"),
    )
    return {"new": totals["new"] or 0, "moved": totals["moved"] or 0, "won": totals["won"] or 0}
