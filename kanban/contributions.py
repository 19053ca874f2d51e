"""What the pipeline adds to contact pages and the inbox side panel."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from core.contributions import CONTACT_PANEL, CONTACT_TIMELINE, contribute
from kanban.models import Card, CardMove


def lead_panel(*, contact: Any, **kwargs: Any) -> list[str]:
    cards = list(Card.objects.filter(contact=contact).select_related("stage", "board", "owner"))
    return [render_to_string("kanban/_lead_panel.html", {"cards": cards})] if cards else []


def stage_timeline(*, contact: Any, **kwargs: Any) -> list[dict[str, Any]]:
    moves = CardMove.objects.filter(card__contact=contact).select_related("card", "from_stage", "to_stage", "actor")[
        :100
    ]
    return [
        {
            "when": move.created_at,
            "text": _("%(card)s: %(source)s → %(target)s")
            % {
                "card": move.card.title,
                "source": move.from_stage.name if move.from_stage else "—",
                "target": move.to_stage.name if move.to_stage else "—",
            },
            "detail": " · ".join(
                filter(
                    None,
                    [move.get_actor_kind_display(), move.actor.get_short_name() if move.actor else "", move.reason],
                )
            ),
        }
        for move in moves
    ]


def connect() -> None:
    contribute(CONTACT_PANEL, lead_panel)
    contribute(CONTACT_TIMELINE, stage_timeline)
