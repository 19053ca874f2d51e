"""Live updates: message events go to the tenant's staff sockets, each only to those who may see its
conversation (agents kept to their own and unassigned conversations do not get the others')."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from core import events
from core.realtime import STAFF_TOPIC, push
from inbox.selectors import conversation_audience


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


def connect() -> None:
    for event in (events.MESSAGE_CREATED, events.MESSAGE_STATUS, events.CONVERSATION_UPDATED):
        events.subscribe(event, _forward(event))
    # An echo from the phone is rendered like any new message in the staff's open inbox.
    events.subscribe(events.MESSAGE_FROM_BUSINESS_APP, _forward(events.MESSAGE_CREATED))
