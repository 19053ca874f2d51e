from __future__ import annotations

from django.db.models import QuerySet

from inbox.models import Channel, Conversation, Message


def channels_all() -> QuerySet[Channel]:
    return Channel.objects.order_by("name")


def conversations_recent(*, limit: int = 100) -> QuerySet[Conversation]:
    return Conversation.objects.select_related("contact", "channel").order_by("-last_message_at", "-id")[:limit]


def conversation_messages(*, conversation: Conversation, limit: int = 200) -> list[Message]:
    recent = Message.objects.filter(conversation=conversation).order_by("-created_at", "-id")[:limit]
    return list(reversed(list(recent)))
