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
from inbox.models import MessageStatus


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    """Counts for the progress bar and the funnel: recipients by state, messages by delivery status
    (cumulative: a read message was also delivered and sent)."""
    recipients = dict(CampaignRecipient.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")))
    messages = dict(
        CampaignRecipient.objects.filter(campaign=campaign, message__isnull=False)
        .values_list("message__status")
        .annotate(n=Count("id"))
    )
    total = sum(recipients.values())
    pending = recipients.get(RecipientStatus.PENDING, 0)
    read = messages.get(MessageStatus.READ, 0)
    delivered = read + messages.get(MessageStatus.DELIVERED, 0)
    sent = delivered + messages.get(MessageStatus.SENT, 0)
    return {
        "total": total,
        "pending": pending,
        "processed": total - pending,
        "progress": round(100 * (total - pending) / total) if total else 0,
        "queued": messages.get(MessageStatus.QUEUED, 0) + messages.get(MessageStatus.SENDING, 0),
        "sent": sent,
        "delivered": delivered,
        "read": read,
        "failed": messages.get(MessageStatus.FAILED, 0) + recipients.get(RecipientStatus.FAILED, 0),
        "unknown": messages.get(MessageStatus.UNKNOWN, 0),
        "skipped": recipients.get(RecipientStatus.SKIPPED, 0),
    }


def campaign_problems(campaign: Campaign, limit: int = 50) -> QuerySet[CampaignRecipient]:
    """Recipients that were skipped or failed, with the reason, for the campaign page."""
    return (
        CampaignRecipient.objects.filter(
            campaign=campaign, status__in=[RecipientStatus.SKIPPED, RecipientStatus.FAILED]
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
