"""What the AI app adds to the inbox's conversation page: the assistant's state and one click to take
over or give back; the agents' copilot under the composer."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from core.contributions import BOARD_CARD_BADGES, CARD_PANEL, CONVERSATION_COMPOSER, CONVERSATION_PANEL, contribute


def bot_panel(*, conversation: Any, request: Any = None, **kwargs: Any) -> list[str]:
    from ai.models import ConversationBot
    from ai.services import ai_settings_current, assistant_for

    assistant = assistant_for(conversation)
    if assistant is None:
        return []
    state = ConversationBot.objects.filter(conversation=conversation).first()
    context = {
        "conversation": conversation,
        "assistant": assistant,
        "state": state,
        "bot_mode": state is None or state.mode == "bot",
        "retrieval_only": not ai_settings_current().has_api_key,
    }
    return [render_to_string("ai/_conversation_panel.html", context, request=request)]


def copilot_tools(*, conversation: Any, request: Any = None, **kwargs: Any) -> list[str]:
    """The copilot's buttons under the composer, for a member whose role may use it."""
    from ai.copilot import LANGUAGES
    from ai.services import ai_settings_current
    from core.roles import Action, role_allows

    if request is None or not role_allows(getattr(request, "membership", None), Action.COPILOT_USE):
        return []
    context = {
        "conversation": conversation,
        "retrieval_only": not ai_settings_current().has_api_key,
        "languages": LANGUAGES,
    }
    return [render_to_string("ai/_copilot.html", context, request=request)]


def card_lead_panel(*, card: Any, request: Any = None, **kwargs: Any) -> list[str]:
    """The card page: the lead score, the AI's pending suggestion (accept / dismiss) and what the AI did."""
    from ai.leads import card_suggestions, cards_lead_state

    suggestions = list(card_suggestions(card_id=card.pk)[:20])
    if not suggestions:
        return []
    state = cards_lead_state(card_ids=[card.pk]).get(card.pk, {})
    context = {"card": card, "suggestions": suggestions, "score": state.get("score"), "pending": state.get("pending")}
    return [render_to_string("ai/_card_lead.html", context, request=request)]


def board_card_badges(*, board: Any, cards: list[Any], request: Any = None, **kwargs: Any) -> list[tuple[int, str]]:
    """On the board: each card's lead score and, when the AI suggests a move, the suggestion to decide."""
    from ai.leads import cards_lead_state

    state = cards_lead_state(card_ids=[c.pk for c in cards])
    return [
        (card_id, render_to_string("ai/_card_badge.html", {"card_id": card_id, **found}, request=request))
        for card_id, found in state.items()
    ]


def connect() -> None:
    contribute(CONVERSATION_PANEL, bot_panel)
    contribute(CONVERSATION_COMPOSER, copilot_tools)
    contribute(CARD_PANEL, card_lead_panel)
    contribute(BOARD_CARD_BADGES, board_card_badges)
