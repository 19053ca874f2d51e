"""Reads on campaigns and cadences."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from campaigns.models import (
    Cadence,
    Campaign,
    CampaignRecipient,
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
        steps_count=Count("steps", distinct=True),
        active_count=Count("enrollments", filter=Q(enrollments__status=EnrollmentStatus.ACTIVE), distinct=True),
    )


def cadences_active() -> QuerySet[Cadence]:
    return Cadence.objects.filter(is_active=True)


def enrollments_of_contact(contact_id: int) -> QuerySet[Enrollment]:
    return Enrollment.objects.filter(contact_id=contact_id).select_related("cadence")


def recipients_of_contact(contact_id: int) -> QuerySet[CampaignRecipient]:
    return CampaignRecipient.objects.filter(contact_id=contact_id).select_related("campaign", "message")
