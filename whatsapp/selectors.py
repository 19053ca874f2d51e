from __future__ import annotations

import datetime
import zoneinfo

from django.db import connection
from django.db.models import Exists, Min, OuterRef, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from inbox.models import Channel, Direction, Message, MessageStatus
from whatsapp.models import MessageTemplate, QrPacing, TemplateStatus
from whatsapp.pacing import ChannelHistory, Decision, Outcome, PacingSettings, SendRecord, pacing_next


def templates_of(*, waba_id: str) -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.filter(waba_id=waba_id).order_by("name", "language")


def templates_approved(*, waba_id: str) -> QuerySet[MessageTemplate]:
    return templates_of(waba_id=waba_id).filter(status=TemplateStatus.APPROVED)


def pacing_settings_of(*, channel: Channel, timezone_name: str | None = None) -> PacingSettings:
    """The channel's pacing settings (the defaults when none were saved), in the tenant's timezone."""
    tz = timezone_name or str(getattr(getattr(connection, "tenant", None), "timezone", "") or "America/Sao_Paulo")
    row = QrPacing.objects.filter(channel=channel).first()
    if row is None:
        return PacingSettings(timezone=tz)
    return PacingSettings(
        min_delay_s=row.min_delay_s,
        max_delay_s=row.max_delay_s,
        batch_size=row.batch_size,
        batch_pause_min_s=row.batch_pause_min_s,
        batch_pause_max_s=row.batch_pause_max_s,
        daily_cap=row.daily_cap,
        warmup_start=row.warmup_start,
        warmup_days=row.warmup_days,
        stop_window=row.stop_window,
        stop_failure_rate=float(row.stop_failure_rate),
        stop_unanswered_rate=float(row.stop_unanswered_rate),
        reply_wait_s=row.reply_wait_s,
        timezone=tz,
    )


def pacing_history(*, channel: Channel, settings: PacingSettings, now: datetime.datetime) -> ChannelHistory:
    """The number's sends the policy judges: its latest outbound messages (with whether the contact wrote
    back after each), how many left today (tenant's local day) and its first send ever. Three queries."""
    outbound = Message.objects.filter(channel=channel, direction=Direction.OUTBOUND).exclude(
        status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
    )
    at = Coalesce("sent_at", "failed_at", "claimed_at", "created_at")
    replied = Exists(
        Message.objects.filter(
            conversation=OuterRef("conversation"), direction=Direction.INBOUND, created_at__gt=OuterRef("at")
        )
    )
    limit = max(settings.stop_window, settings.batch_size) + 1
    rows = (
        outbound.annotate(at=at, replied=replied).order_by("-at", "-id").values_list("at", "status", "replied")[:limit]
    )
    recent = [
        SendRecord(when, Outcome.FAILED if status == MessageStatus.FAILED else Outcome.SENT, bool(was_replied))
        for when, status, was_replied in reversed(list(rows))
    ]
    local = now.astimezone(zoneinfo.ZoneInfo(settings.timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    sent_today = outbound.annotate(at=at).filter(at__gte=midnight).count()
    first = outbound.aggregate(first=Min(at))["first"]
    pacing = QrPacing.objects.filter(channel=channel).values_list("judged_since", flat=True).first()
    return ChannelHistory(
        key=f"{getattr(connection, 'schema_name', 'public')}:{channel.pk}",
        recent=recent,
        first_sent_at=first,
        sent_today=sent_today,
        judged_since=pacing,
    )


def qr_pacing_decide(*, channel: Channel, now: datetime.datetime | None = None) -> Decision:
    """The dispatcher's one call for a QR channel: may its next message go now, when, or must it stop."""
    moment = now or timezone.now()
    settings = pacing_settings_of(channel=channel)
    return pacing_next(
        history=pacing_history(channel=channel, settings=settings, now=moment), settings=settings, now=moment
    )
