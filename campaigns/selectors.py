"""Reads on campaigns and cadences."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from campaigns.models import (
    Cadence,
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    ContentKind,
    Enrollment,
    EnrollmentStatus,
    RecipientStatus,
)


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    """Counts for the progress bar and the funnel, all from the recipients' states (the one source):
    cumulative where a later state implies an earlier one (a reply was read, delivered and sent)."""
    by = dict(CampaignRecipient.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")))
    total = sum(by.values())
    pending = by.get(RecipientStatus.PENDING, 0)
    replied = by.get(RecipientStatus.REPLIED, 0)
    read = replied + by.get(RecipientStatus.READ, 0)
    delivered = read + by.get(RecipientStatus.DELIVERED, 0)
    sent = delivered + by.get(RecipientStatus.SENT, 0)
    sending = by.get(RecipientStatus.SENDING, 0)
    return {
        "total": total,
        "pending": pending,
        "processed": total - pending - sending,
        "progress": round(100 * (total - pending - sending) / total) if total else 0,
        "sending": sending,
        "sent": sent,
        "delivered": delivered,
        "read": read,
        "replied": replied,
        "failed": by.get(RecipientStatus.FAILED, 0),
        "unknown": by.get(RecipientStatus.UNKNOWN, 0),
        "skipped": by.get(RecipientStatus.SKIPPED, 0),
    }


def campaign_problems(campaign: Campaign, limit: int = 50) -> QuerySet[CampaignRecipient]:
    """Recipients that were skipped or failed, with the reason, for the campaign page."""
    return (
        CampaignRecipient.objects.filter(
            campaign=campaign,
            status__in=[RecipientStatus.SKIPPED, RecipientStatus.FAILED, RecipientStatus.UNKNOWN],
        )
        .select_related("contact")
        .order_by("-processed_at", "-id")[:limit]
    )


def cadences_with_counts() -> QuerySet[Cadence]:
    return Cadence.objects.select_related("channel").annotate(
        steps_count=Count("steps", filter=Q(steps__removed_at__isnull=True), distinct=True),
        active_count=Count("enrollments", filter=Q(enrollments__status=EnrollmentStatus.ACTIVE), distinct=True),
    )


def cadences_active() -> QuerySet[Cadence]:
    return Cadence.objects.filter(is_active=True)


def enrollments_of_contact(contact_id: int) -> QuerySet[Enrollment]:
    return Enrollment.objects.filter(contact_id=contact_id).select_related("cadence")


def recipients_of_contact(contact_id: int) -> QuerySet[CampaignRecipient]:
    return CampaignRecipient.objects.filter(contact_id=contact_id).select_related("campaign", "message")


def campaign_preview(campaign: Campaign, limit: int = 5) -> list[dict[str, Any]]:
    """What the first contacts of the audience would get, each its own variation (spintax) and fields:
    the same function the send uses."""
    from campaigns.services import campaign_audience, campaign_content, template_text

    template_body = template_text(campaign, campaign.channel) if campaign.kind == ContentKind.TEMPLATE else None
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED) and not campaign.total_recipients:
        contacts = list(campaign_audience(campaign)[:limit])
    else:
        contacts = [
            r.contact for r in CampaignRecipient.objects.filter(campaign=campaign).select_related("contact")[:limit]
        ]
    rows = []
    for contact in contacts:
        content = campaign_content(campaign, contact, template_body)
        rows.append(
            {
                "contact_id": contact.pk,
                "contact": contact.display_name,
                "phone": contact.phone or "",
                "body": content["body"],
                "type": str(content["type"]),
                "media_url": content.get("media_url", ""),
                "template_variables": content.get("template_variables", {}),
            }
        )
    return rows


OPT_OUT_TAIL = datetime.timedelta(days=3)


def campaign_report(campaign: Campaign) -> dict[str, Any]:
    """The campaign's outcome: the funnel (from the recipients, the one source), failures and skips by
    reason, the opt-outs of its recipients while it ran, and the button replies the provider reported.

    Clicks on URL buttons: neither the WhatsApp Cloud API webhooks nor Twilio's message status callbacks
    report them per message (Meta gives only a daily total per template in its template analytics), so the
    report counts what is reported per message: quick-reply button taps, which arrive as messages.
    Opt-outs count from the start to three days after the end (they come when the message is read)."""
    from crm.models import ConsentStatus, ContactConsent
    from crm.services import MEDIUM_OF_KIND
    from inbox.models import Direction, Message, MessageType

    stats = campaign_stats(campaign)
    recipients = CampaignRecipient.objects.filter(campaign=campaign)
    by_reason = list(
        recipients.filter(status=RecipientStatus.FAILED)
        .values("reason")
        .annotate(n=Count("id"))
        .order_by("-n", "reason")[:20]
    )
    skipped_by_reason = list(
        recipients.filter(status=RecipientStatus.SKIPPED)
        .values("reason")
        .annotate(n=Count("id"))
        .order_by("-n", "reason")[:20]
    )
    opt_outs = 0
    buttons = 0
    if campaign.started_at:
        # people opt out when they read it, often after the last send: the days after the end count too
        until = (campaign.finished_at + OPT_OUT_TAIL) if campaign.finished_at else timezone.now()
        contact_ids = recipients.exclude(message=None).values("contact_id")
        opt_outs = (
            ContactConsent.objects.filter(
                contact_id__in=contact_ids,
                medium=MEDIUM_OF_KIND.get(campaign.channel.kind, ""),
                changed_at__gte=campaign.started_at,
                changed_at__lte=until,
            )
            .exclude(status=ConsentStatus.OPTED_IN)
            .count()
        )
        buttons = Message.objects.filter(
            conversation__contact_id__in=contact_ids,
            conversation__channel_id=campaign.channel_id,
            direction=Direction.INBOUND,
            type=MessageType.INTERACTIVE,
            created_at__gte=campaign.started_at,
            payload__has_key="button",
        ).count()
    return {
        **stats,
        "failed_by_reason": [{"reason": r["reason"], "count": r["n"]} for r in by_reason],
        "skipped_by_reason": [{"reason": r["reason"], "count": r["n"]} for r in skipped_by_reason],
        "opt_outs": opt_outs,
        "button_replies": buttons,
        "url_clicks": None,  # not reported per message by the providers (see the docstring)
    }


def campaign_export_rows(campaign: Campaign) -> Any:
    """Every recipient for the CSV export: contact, phone, state, reason, message status and times."""
    return (
        CampaignRecipient.objects.filter(campaign=campaign)
        .select_related("contact", "message")
        .order_by("id")
        .iterator(chunk_size=2000)
    )


def cadence_step_stats(cadence: Cadence) -> list[dict[str, Any]]:
    """Per live step, in order: contacts waiting for it, runs handed on (sent or call placed), delivered,
    replied, skipped and failed (by reason code), and the contacts who left the cadence right after it,
    by exit reason. Four grouped queries, whatever the size."""
    from campaigns.models import CadenceStep, ExitReason, StepRun, StepRunCode, StepRunStatus

    steps = list(CadenceStep.objects.filter(cadence=cadence, removed_at__isnull=True).order_by("position", "id"))
    ids = [s.pk for s in steps]
    waiting = dict(
        Enrollment.objects.filter(next_step_id__in=ids, status=EnrollmentStatus.ACTIVE)
        .values("next_step_id")
        .annotate(n=Count("id"))
        .values_list("next_step_id", "n")
    )
    paused = dict(
        Enrollment.objects.filter(next_step_id__in=ids, status=EnrollmentStatus.PAUSED)
        .values("next_step_id")
        .annotate(n=Count("id"))
        .values_list("next_step_id", "n")
    )
    runs: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    for row in (
        StepRun.objects.filter(step_id__in=ids)
        .values("step_id", "status", "code")
        .annotate(
            n=Count("id"),
            delivered=Count("id", filter=Q(message__status__in=["delivered", "read"])),
            replied=Count("id", filter=Q(replied_at__isnull=False)),
        )
    ):
        counts = runs[row["step_id"]]
        counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
        counts["delivered"] = counts.get("delivered", 0) + row["delivered"]
        counts["replied"] = counts.get("replied", 0) + row["replied"]
        if row["code"] and row["status"] in (StepRunStatus.SKIPPED, StepRunStatus.FAILED):
            key = f"code:{row['code']}"
            counts[key] = counts.get(key, 0) + row["n"]
    exits: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    for step_id, reason, n in (
        Enrollment.objects.filter(last_step_id__in=ids, status=EnrollmentStatus.STOPPED)
        .values("last_step_id", "exit_reason")
        .annotate(n=Count("id"))
        .values_list("last_step_id", "exit_reason", "n")
    ):
        exits[step_id][reason] = n
    labels = dict(ExitReason.choices)
    codes = dict(StepRunCode.choices)
    found = []
    for step in steps:
        counts = runs[step.pk]
        found.append(
            {
                "step": step,
                "waiting": waiting.get(step.pk, 0),
                "paused": paused.get(step.pk, 0),
                "sent": counts.get(StepRunStatus.QUEUED, 0) + counts.get(StepRunStatus.PLACED, 0),
                "delivered": counts.get("delivered", 0),
                "replied": counts.get("replied", 0),
                "skipped": counts.get(StepRunStatus.SKIPPED, 0),
                "failed": counts.get(StepRunStatus.FAILED, 0),
                "problems": [
                    {"code": key[5:], "label": str(codes.get(key[5:], key[5:])), "count": n}
                    for key, n in sorted(counts.items())
                    if key.startswith("code:")
                ],
                "exits": [
                    {"reason": reason, "label": str(labels.get(reason, reason)), "count": n}
                    for reason, n in sorted(exits[step.pk].items())
                ],
            }
        )
    return found


def cadence_exits(cadence: Cadence) -> list[dict[str, Any]]:
    """How many contacts left this cadence early, by reason code (every code, zeros included)."""
    from campaigns.models import ExitReason

    counts = dict(
        Enrollment.objects.filter(cadence=cadence, status=EnrollmentStatus.STOPPED)
        .values("exit_reason")
        .annotate(n=Count("id"))
        .values_list("exit_reason", "n")
    )
    return [
        {"reason": value, "label": str(label), "count": counts.get(value, 0)} for value, label in ExitReason.choices
    ]


def cadence_status_counts(cadence: Cadence) -> dict[str, int]:
    counts = dict(
        Enrollment.objects.filter(cadence=cadence).values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {value: counts.get(value, 0) for value in EnrollmentStatus.values}


def campaigns_active_between(start: datetime.datetime, end: datetime.datetime) -> list[dict[str, Any]]:
    """Campaigns that were sending at some time in [start, end) (started before the end, not finished
    before the start), with their results so far (campaign_stats)."""
    qs = (
        Campaign.objects.filter(started_at__isnull=False, started_at__lt=end)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=start))
        .order_by("started_at", "pk")
    )
    return [{"campaign": c, "name": c.name, "status": c.get_status_display(), **campaign_stats(c)} for c in qs]
