"""Reads for scheduled reports: the settings row, the run log and the numbers of a period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from analytics.selectors import Filters, dashboard_funnel, dashboard_leads, dashboard_summary
from campaigns.selectors import campaigns_active_between
from inbox.models import Channel, ChannelKind
from reports.models import Frequency, ReportRun, ReportSettings
from whatsapp.models import MessageTemplate, TemplateStatus

WHATSAPP_KINDS = (ChannelKind.WHATSAPP_CLOUD, ChannelKind.WHATSAPP_WEB)


@dataclass(frozen=True)
class Period:
    """Whole days in the tenant's time zone, end inclusive: yesterday, or the 7 days before today."""

    frequency: str
    start: date
    end: date


def report_settings() -> ReportSettings:
    """The tenant's report settings, read without writing: the defaults (off), unsaved, until saved."""
    return ReportSettings.objects.filter(pk=1).first() or ReportSettings(pk=1)


def report_runs(limit: int = 20) -> QuerySet[ReportRun]:
    return ReportRun.objects.all()[:limit]


def report_templates() -> QuerySet[MessageTemplate]:
    """Templates a report may go out in outside the 24-hour window: approved ones of the accounts of the
    tenant's WhatsApp Cloud API numbers."""
    accounts = Channel.objects.filter(kind=ChannelKind.WHATSAPP_CLOUD).exclude(waba_id="").values("waba_id")
    return MessageTemplate.objects.filter(waba_id__in=accounts, status=TemplateStatus.APPROVED).order_by(
        "name", "language"
    )


def whatsapp_channels() -> QuerySet[Channel]:
    """The channels a report may go out on: the tenant's WhatsApp numbers (Cloud API or QR-linked)."""
    return Channel.objects.filter(kind__in=WHATSAPP_KINDS).order_by("name", "pk")


def report_period(frequency: str, today: date) -> Period:
    """The period a report sent on `today` (local) covers. Off counts as daily (a test report)."""
    if frequency == Frequency.WEEKLY:
        return Period(frequency=Frequency.WEEKLY, start=today - timedelta(days=7), end=today - timedelta(days=1))
    yesterday = today - timedelta(days=1)
    return Period(frequency=Frequency.DAILY, start=yesterday, end=yesterday)


def report_due(settings: ReportSettings, *, now: datetime, tz: str) -> Period | None:
    """The period whose report is due at `now` in the zone `tz`, or None: daily from the chosen local
    hour on, weekly the same on the chosen weekday only. Whether it was already sent is the run log's
    business (the unique claim), so a late tick the same day still sends it."""
    if settings.frequency == Frequency.OFF:
        return None
    local = now.astimezone(ZoneInfo(tz))
    if local.hour < settings.hour:
        return None
    if settings.frequency == Frequency.WEEKLY and local.weekday() != settings.weekday:
        return None
    return report_period(settings.frequency, local.date())


def report_numbers(period: Period, *, tz: str) -> dict[str, Any]:
    """The summary's numbers, from the analytics rollups (messages, replies, leads, calls) and the
    campaigns that were sending during the period (their results so far)."""
    f = Filters(start=period.start, end=period.end, tz=tz)
    kpis = {name: kpi["value"] for name, kpi in dashboard_summary(f)["kpis"].items()}
    leads = dashboard_leads(f)
    funnel = dashboard_funnel(f)
    start, end = f.bounds
    return {
        "messages_received": kpis["messages_received"],
        "messages_sent": kpis["messages_sent"],
        "messages_failed": kpis["messages_failed"],
        "replies": kpis["responses"],
        "conversations_opened": kpis["conversations_opened"],
        "conversations_resolved": kpis["conversations_resolved"],
        "new_leads": leads["new"],
        "stage_moves": leads["moved"],
        "leads_won": leads["won"],
        "calls": kpis["calls"],
        "calls_answered": kpis["calls_answered"],
        "board": funnel["board"],
        "stages": [s for s in funnel["stages"] if s["entered"]],
        "campaigns": campaigns_active_between(start, end),
    }
