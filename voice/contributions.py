"""What the voice app adds to the contact page: a call panel and one timeline entry per call."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from core.contributions import CONTACT_PANEL, CONTACT_TIMELINE, contribute
from voice.models import CallDirection
from voice.selectors import calls_of_contact, voice_agents_active


def call_panel(*, contact: Any, request: Any = None, **kwargs: Any) -> list[str]:
    agents = list(voice_agents_active())
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
            outcome = _("%(status)s: %(reason)s") % {"status": outcome, "reason": call.disconnection_reason}
        entries.append(
            {
                "when": call.created_at,
                "text": " · ".join([kind, call.duration_display, outcome]),
                "detail": call.agent.name if call.agent else _("Call"),
            }
        )
    return entries


def connect() -> None:
    contribute(CONTACT_PANEL, call_panel)
    contribute(CONTACT_TIMELINE, call_timeline)
