"""What the inbox adds to the contacts pages: a filter by channel; on a contact's page, the conversations
and messages the member may see (agents kept to their own see only theirs and unassigned ones); and the
merge guard that keeps a merge from pulling hidden messages into view."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from inbox.models import Channel, Conversation, Direction, Message
from inbox.selectors import conversations_visible_to


def channel_filter(*, params: Any, **kwargs: Any) -> list[str]:
    channels = list(Channel.objects.order_by("name"))
    if not channels:
        return []
    return [
        render_to_string(
            "inbox/_contact_channel_filter.html", {"channels": channels, "selected": params.get("channel", "")}
        )
    ]


def contact_conversations(*, contact: Any, user: Any, role: str | None, **kwargs: Any) -> list[Conversation]:
    return list(conversations_visible_to(user=user, role=role).filter(contact=contact).order_by("pk"))


def message_timeline(*, contact: Any, user: Any = None, role: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The contact's latest messages, from the conversations this member may see only."""
    entries: list[dict[str, Any]] = []
    for conversation in contact_conversations(contact=contact, user=user, role=role):
        for m in conversation.messages.order_by("-created_at")[:50]:  # type: ignore[attr-defined]
            direction = (
                _("received")
                if m.direction == Direction.INBOUND
                else _("note")
                if m.direction == Direction.NOTE
                else _("sent")
            )
            entries.append(
                {
                    "when": m.created_at,
                    "text": m.body or m.get_type_display(),
                    "detail": f"{conversation.channel.name} · {direction}",
                }
            )
    return entries


def merge_guard(*, contacts: list[Any], user: Any, role: str | None, **kwargs: Any) -> list[str]:
    """Merging moves conversations and their messages: a member who may not see all of them may not merge."""
    ids = [c.pk for c in contacts]
    every = Conversation.objects.filter(contact_id__in=ids).count()
    seen = conversations_visible_to(user=user, role=role).filter(contact_id__in=ids).count()
    if seen < every:
        return [_("These contacts have conversations assigned to someone else; ask an owner or admin to merge them.")]
    return []


def media_guard(*, path: str, user: Any, role: str | None, **kwargs: Any) -> list[str]:
    """A message's file goes only to those who may see its conversation."""
    found = Message.objects.filter(media=path).values("conversation_id").first()
    if found is None:
        return []
    if conversations_visible_to(user=user, role=role).filter(pk=found["conversation_id"]).exists():
        return []
    return ["message of a conversation this member may not see"]
