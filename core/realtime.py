"""Live updates to the browsers of a tenant's staff, over the Channels layer.

Group names always carry the tenant schema, so an event of one tenant can never reach a socket of
another: ``t.<schema>.<topic>``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

STAFF_TOPIC = "staff"
MANAGERS_TOPIC = "managers"  # owners and admins only (e.g. a WhatsApp Web QR code, which links a phone)


def group_name(schema_name: str, topic: str) -> str:
    return f"t.{schema_name}.{topic}"


def user_topic(user_id: int) -> str:
    return f"user.{user_id}"


_batch = threading.local()


def push(schema_name: str, topic: str, event: str, payload: dict[str, Any]) -> None:
    """Send now (or at the end of the enclosing `batched()` block). Inside a transaction, call it from an
    on-commit hook, as core.events does."""
    message = {"type": "live.event", "event": event, "payload": payload}
    pending = getattr(_batch, "items", None)
    if pending is not None:
        pending.append((group_name(schema_name, topic), message))
        return
    _send([(group_name(schema_name, topic), message)])


@contextmanager
def batched() -> Iterator[None]:
    """Collect pushes and send them together at the end (one event loop hop for a whole batch)."""
    if getattr(_batch, "items", None) is not None:
        yield
        return
    _batch.items = []
    try:
        yield
    finally:
        items, _batch.items = _batch.items, None
        if items:
            _send(items)


def _send(items: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for group, message in items:
            await layer.group_send(group, message)

    async_to_sync(send_all)()
