"""Reads of the voice app."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from voice.models import Call, CallDirection, CallStatus, VoiceAgent, VoiceSettings


def voice_settings_current() -> VoiceSettings | None:
    return VoiceSettings.objects.order_by("pk").first()


def voice_api_key() -> str:
    found = voice_settings_current()
    return found.api_key if found is not None else ""


def voice_agents_active() -> QuerySet[VoiceAgent]:
    return VoiceAgent.objects.filter(is_active=True).exclude(retell_agent_id="")


def voice_agent_for_number(*, number: str) -> VoiceAgent | None:
    """The agent answering calls to this number: the one calling from it, else the first active agent."""
    agents = voice_agents_active()
    return agents.filter(from_number=number).first() or agents.first()


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


def twilio_auth_token(*, account_sid: str) -> str:
    """The auth token of this tenant's Twilio account (from its SMS channel), to check X-Twilio-Signature."""
    from inbox.models import Channel, ChannelKind

    if not account_sid:
        return ""
    for channel in Channel.objects.filter(kind=ChannelKind.SMS_TWILIO):
        credentials = channel.credentials or {}
        if credentials.get("account_sid") == account_sid and credentials.get("auth_token"):
            return str(credentials["auth_token"])
    return ""
