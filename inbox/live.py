"""Live updates: message events go to the tenant's staff sockets, each only to those who may see its
conversation (agents kept to their own and unassigned conversations do not get the others')."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from core import events
from core.realtime import STAFF_TOPIC, batched, client_event_register, push
from inbox.selectors import conversation_audience, conversation_audiences


def _forward(event: str):  # type: ignore[no-untyped-def]
    def handler(schema_name: str, payload: dict[str, Any]) -> None:
        conversation_id = payload.get("conversation_id")
        audience = None
        if conversation_id:
            with schema_context(schema_name):
                audience = conversation_audience(conversation_id=int(conversation_id))
        push(schema_name, STAFF_TOPIC, event, payload, audience=audience)

    handler.__qualname__ = f"live.forward[{event}]"
    return handler


def _forward_many(event: str):  # type: ignore[no-untyped-def]
    """_forward for a batch (a runner's sends, the drain's statuses): the audiences in two queries, the
    pushes sent together."""

    def handler(schema_name: str, payloads: list[dict[str, Any]]) -> None:
        ids = [int(p["conversation_id"]) for p in payloads if p.get("conversation_id")]
        audiences = {}
        if ids:
            with schema_context(schema_name):
                audiences = conversation_audiences(conversation_ids=ids)
        with batched():
            for payload in payloads:
                conversation_id = payload.get("conversation_id")
                audience = audiences.get(int(conversation_id)) if conversation_id else None
                push(schema_name, STAFF_TOPIC, event, payload, audience=audience)

    handler.__qualname__ = f"live.forward_many[{event}]"
    return handler


TYPING = "conversation.typing"


def typing_relay(schema_name: str, user_id: int, role: str | None, payload: dict[str, Any]) -> None:
    """A member is typing in a conversation's composer: tell the others who may see it ("X is replying"),
    only when this member may see that conversation themselves."""
    from accounts.models import User
    from inbox.selectors import conversations_visible_to

    conversation_id = payload.get("conversation_id")
    if not isinstance(conversation_id, int):
        return
    with schema_context(schema_name):
        user = User.objects.filter(pk=user_id).first()
        if user is None or not conversations_visible_to(user=user, role=role).filter(pk=conversation_id).exists():
            return
        audience = conversation_audience(conversation_id=conversation_id)
    note = bool(payload.get("note"))
    push(
        schema_name,
        STAFF_TOPIC,
        TYPING,
        {"conversation_id": conversation_id, "user_id": user_id, "name": user.get_short_name(), "note": note},
        audience=audience,
    )


def connect() -> None:
    client_event_register("typing", typing_relay)
    for event in (events.MESSAGE_CREATED, events.CONVERSATION_UPDATED, events.CONVERSATION_EVENT):
        events.subscribe(event, _forward(event))
    events.subscribe_many(events.MESSAGE_STATUS, _forward_many(events.MESSAGE_STATUS))
    # An echo from the phone is rendered like any new message in the staff's open inbox.
    events.subscribe(events.MESSAGE_FROM_BUSINESS_APP, _forward(events.MESSAGE_CREATED))
