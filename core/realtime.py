"""Live updates to the browsers of a tenant's staff, over the Channels layer.

Group names always carry the tenant schema, so an event of one tenant can never reach a socket of
another: ``t.<schema>.<topic>``.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

STAFF_TOPIC = "staff"


def group_name(schema_name: str, topic: str) -> str:
    return f"t.{schema_name}.{topic}"


def user_topic(user_id: int) -> str:
    return f"user.{user_id}"


def push(schema_name: str, topic: str, event: str, payload: dict[str, Any]) -> None:
    """Send now. Callers inside a transaction should use push_on_commit."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "live.event", "event": event, "payload": payload}
    async_to_sync(layer.group_send)(group_name(schema_name, topic), message)


def push_on_commit(schema_name: str, topic: str, event: str, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: push(schema_name, topic, event, payload))
