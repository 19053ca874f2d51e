"""What the voice app adds to the contact page: a call panel and one timeline entry per call."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _

from core.contributions import (
    BOARD_CARD_BADGES,
    CADENCE_CALL_AGENTS,
    CADENCE_CALL_PLACE,
    CARD_PANEL,
    CONTACT_PANEL,
    CONTACT_TIMELINE,
    contribute,
)
from voice.models import CallDirection
from voice.selectors import calls_of_contact, voice_agents_outbound


def call_panel(*, contact: Any, request: Any = None, **kwargs: Any) -> list[str]:
    agents = list(voice_agents_outbound())
    calls = calls_of_contact(contact=contact, limit=5)
    if not agents and not calls:
        return []
    context = {"contact": contact, "agents": agents, "calls": calls}
    return [render_to_string("voice/_contact_panel.html", context, request=request)]


def call_timeline(*, contact: Any, **kwargs: Any) -> list[dict[str, Any]]:
    entries = []
    for call in calls_of_contact(contact=contact):
        kind = _("Outbound call") if call.direction == CallDirection.OUTBOUND else _("Inbound call")
        outcome = call.get_status_display()
        if call.disconnection_reason:
            outcome = _("%(status)s: %(reason)s") % {"status": outcome, "reason": call.disconnection_display}
        detail = [call.agent.name if call.agent else _("Call")]
        if call.sentiment:
            detail.append(_("sentiment: %(sentiment)s") % {"sentiment": call.sentiment_display})
        if call.summary:
            detail.append(call.summary)
        entries.append(
            {
                "when": call.created_at,
                "text": " · ".join([kind, call.duration_display, outcome]),
                "detail": " · ".join(detail),
                "url": reverse("call_detail", args=[call.pk]),
                "body": call.transcript,
                "body_label": _("Transcript"),
            }
        )
    return entries


def card_panel(*, card: Any, request: Any = None, **kwargs: Any) -> list[str]:
    """On a lead card's page: a "Call" button (an AI agent calls the card's contact) and its last calls
    with their analysis (summary, sentiment, success)."""
    if card.contact is None:
        return []
    agents = list(voice_agents_outbound())
    calls = calls_of_contact(contact=card.contact, limit=5)
    if not agents and not calls:
        return []
    context = {"card": card, "agents": agents, "calls": calls}
    return [render_to_string("voice/_card_panel.html", context, request=request)]


def board_card_badges(*, board: Any, cards: list[Any], request: Any = None, **kwargs: Any) -> list[tuple[int, str]]:
    """On the board: each card's last AI call (its sentiment, or its status), one query for the board."""
    from voice.selectors import calls_last_of_contacts

    by_contact: dict[int, list[int]] = {}
    for card in cards:
        if card.contact_id:
            by_contact.setdefault(card.contact_id, []).append(card.pk)
    badges: list[tuple[int, str]] = []
    for call in calls_last_of_contacts(contact_ids=list(by_contact)):
        html = render_to_string("voice/_card_badge.html", {"call": call}, request=request)
        badges += [(card_id, html) for card_id in by_contact.get(call.contact_id or 0, [])]
    return badges


def cadence_call_agents(**kwargs: Any) -> list[tuple[int, str]]:
    """The agents a cadence call step may use: published and able to call out."""
    return [(agent.pk, agent.name) for agent in voice_agents_outbound()]


def cadence_call_place(
    *, contact_id: int, agent_id: int, idempotency_key: str, context: dict[str, Any] | None = None, **kwargs: Any
) -> list[int]:
    """A cadence step's call: queued once per key (the same key returns the first call's id). Raises
    ValidationError with the reason when the call cannot be made (no consent, no agent, no number)."""
    from crm.models import Contact
    from voice.models import VoiceAgent
    from voice.outbound import call_queue

    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        return []
    agent = VoiceAgent.objects.filter(pk=agent_id).first()
    call = call_queue(contact=contact, agent=agent, idempotency_key=idempotency_key, context=context)
    return [call.pk]


def connect() -> None:
    contribute(CONTACT_PANEL, call_panel)
    contribute(CONTACT_TIMELINE, call_timeline)
    contribute(CARD_PANEL, card_panel)
    contribute(BOARD_CARD_BADGES, board_card_badges)
    contribute(CADENCE_CALL_AGENTS, cadence_call_agents)
    contribute(CADENCE_CALL_PLACE, cadence_call_place)
