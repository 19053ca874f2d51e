"""What the AI app adds to the inbox's conversation page: the assistant's state and one click to take
over or give back."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from core.contributions import CONVERSATION_PANEL, contribute


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


def connect() -> None:
    contribute(CONVERSATION_PANEL, bot_panel)
