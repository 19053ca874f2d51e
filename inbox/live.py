"""Live updates: message events go to the tenant's staff sockets."""

from __future__ import annotations

from typing import Any

from core import events
from core.realtime import STAFF_TOPIC, push


def _forward(event: str):  # type: ignore[no-untyped-def]
    def handler(schema_name: str, payload: dict[str, Any]) -> None:
        push(schema_name, STAFF_TOPIC, event, payload)

    handler.__qualname__ = f"live.forward[{event}]"
    return handler


def connect() -> None:
    for event in (events.MESSAGE_CREATED, events.MESSAGE_STATUS, events.CONVERSATION_UPDATED):
        events.subscribe(event, _forward(event))
