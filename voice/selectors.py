"""Reads of the voice app."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from voice.models import AgentDirection, AgentStatus, Call, CallDirection, CallStatus, VoiceAgent, VoiceSettings


def voice_settings_current() -> VoiceSettings | None:
    return VoiceSettings.objects.order_by("pk").first()


def voice_api_key() -> str:
    found = voice_settings_current()
    return found.api_key if found is not None else ""


def voice_agents_active() -> QuerySet[VoiceAgent]:
    """Agents that can place calls now: active and published on Retell."""
    return VoiceAgent.objects.filter(is_active=True, status=AgentStatus.PUBLISHED).exclude(retell_agent_id="")


def voice_agents_outbound() -> QuerySet[VoiceAgent]:
    return voice_agents_active().exclude(direction=AgentDirection.INBOUND)


def calls_filter(*, direction: str = "", status: str = "", contact_id: Any = None) -> QuerySet[Call]:
    qs = Call.objects.select_related("agent", "contact")
    if direction in CallDirection.values:
        qs = qs.filter(direction=direction)
    if status in CallStatus.values:
        qs = qs.filter(status=status)
    if contact_id not in (None, ""):
        qs = qs.filter(contact_id=int(contact_id))
    return qs


def calls_of_contact(*, contact: Any, limit: int = 100) -> list[Call]:
    return list(Call.objects.filter(contact=contact).select_related("agent")[:limit])


def calls_last_of_contacts(*, contact_ids: list[int]) -> list[Call]:
    """The latest call of each of these contacts (one query)."""
    if not contact_ids:
        return []
    latest = Call.objects.filter(contact_id__in=contact_ids).order_by("contact_id", "-created_at", "-id")
    return list(latest.distinct("contact_id"))


def twilio_auth_token(*, account_sid: str) -> str:
    """The signing token of the tenant's Twilio voice account (the voice settings' own, never an SMS
    channel's), to check X-Twilio-Signature; "" when the request names another account."""
    found = voice_settings_current()
    if found is None or not found.twilio_auth_token or not account_sid:
        return ""
    if found.twilio_account_sid and found.twilio_account_sid != account_sid:
        return ""
    return found.twilio_auth_token


def voice_campaign_audience_choices() -> dict[str, list[tuple[int, str]]]:
    """The segments and tags a voice campaign's audience can be made of (this tenant's)."""
    from crm.models import Segment, Tag

    return {
        "segments": list(Segment.objects.order_by("name").values_list("pk", "name")),
        "tags": list(Tag.objects.order_by("name").values_list("pk", "name")),
    }


def voice_campaign_counts(campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per campaign: recipients by status and by outcome, e.g. {7: {"pending": 3, "answered": 2}}."""
    from django.db.models import Count

    from voice.models import VoiceCampaignRecipient

    counts: dict[int, dict[str, int]] = {pk: {} for pk in campaign_ids}
    rows = VoiceCampaignRecipient.objects.filter(campaign_id__in=campaign_ids)
    for row in rows.values("campaign_id", "status").annotate(n=Count("id")):
        counts[row["campaign_id"]][row["status"]] = row["n"]
    for by_outcome in rows.exclude(outcome="").values("campaign_id", "outcome").annotate(n=Count("id")):
        counts[by_outcome["campaign_id"]][by_outcome["outcome"]] = by_outcome["n"]
    for pk in campaign_ids:
        counts[pk]["total"] = sum(v for k, v in counts[pk].items() if k in ("pending", "calling", "done", "skipped"))
    return counts


def voice_campaign_stats(campaign: Any) -> dict[str, Any]:
    """A campaign's numbers: recipients by state and by outcome, its calls (all, in progress, answered:
    ended with someone on the line, not a voicemail nor a dial that never connected)."""
    from voice.campaigns import OUTCOME_OF_REASON
    from voice.models import FINAL_STATUSES, VoiceOutcome, VoiceRecipientStatus

    counts = voice_campaign_counts([campaign.pk])[campaign.pk]
    calls = Call.objects.filter(voice_campaign=campaign)
    return {
        "recipients": {state: counts.get(state, 0) for state in VoiceRecipientStatus.values}
        | {"total": counts["total"]},
        "outcomes": {outcome: counts.get(outcome, 0) for outcome in VoiceOutcome.values},
        "calls": calls.count(),
        "calls_in_progress": calls.exclude(status__in=list(FINAL_STATUSES)).count(),
        "answered": calls.filter(status=CallStatus.ENDED)
        .exclude(disconnection_reason__in=list(OUTCOME_OF_REASON))
        .count(),
    }
