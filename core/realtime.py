"""Live updates to the browsers of a tenant's staff, over the Channels layer.

Group names always carry the tenant schema, so an event of one tenant can never reach a socket of
another: ``t.<schema>.<topic>``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

STAFF_TOPIC = "staff"
MANAGERS_TOPIC = "managers"  # owners and admins only (e.g. a WhatsApp Web QR code, which links a phone)


def group_name(schema_name: str, topic: str) -> str:
    return f"t.{schema_name}.{topic}"


def user_topic(user_id: int) -> str:
    return f"user.{user_id}"


def member_sockets_close(schema_name: str, user_id: int) -> None:
    """The member was removed: their open sockets in this tenant close at once."""
    _send([(group_name(schema_name, user_topic(user_id)), {"type": "member.control", "op": "close"})])


def member_sockets_refresh(schema_name: str, user_id: int) -> None:
    """The member's role changed: their sockets read it again before the next event."""
    _send([(group_name(schema_name, user_topic(user_id)), {"type": "member.control", "op": "refresh"})])


# What a browser may send on its live socket besides a ping (e.g. "typing"): a name -> handler registry
# filled by the apps that own them (inbox), so the socket never imports a domain app. A handler gets the
# tenant schema, the member's user id and role, and the payload, and pushes whatever follows itself.
ClientHandler = Callable[[str, int, str | None, dict[str, Any]], None]
CLIENT_EVENTS: dict[str, ClientHandler] = {}


def client_event_register(name: str, handler: ClientHandler) -> None:
    CLIENT_EVENTS[name] = handler


_batch = threading.local()


@dataclass(frozen=True)
class Audience:
    """Who on a group may receive an event: members with one of `roles`, or the users named. The
    socket (accounts.consumers) drops what its member may not see."""

    roles: frozenset[str] = field(default_factory=frozenset)
    user_ids: frozenset[int] = field(default_factory=frozenset)

    def as_message(self) -> dict[str, list[Any]]:
        return {"roles": sorted(self.roles), "user_ids": sorted(self.user_ids)}


def audience_admits(audience: dict[str, Any] | None, *, role: str | None, user_id: int) -> bool:
    """Whether a socket of this member may receive an event pushed with this audience (None = all)."""
    if audience is None:
        return True
    return role in audience.get("roles", ()) or user_id in audience.get("user_ids", ())


def push(schema_name: str, topic: str, event: str, payload: dict[str, Any], audience: Audience | None = None) -> None:
    """Send now (or at the end of the enclosing `batched()` block). Inside a transaction, call it from an
    on-commit hook, as core.events does. With an `audience`, only those members' sockets get it."""
    message: dict[str, Any] = {"type": "live.event", "event": event, "payload": payload}
    if audience is not None:
        message["audience"] = audience.as_message()
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


LIVE_BUNDLE = 500  # live events to one group per layer message at most (a batch of sends or statuses)


def _bundled(items: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Consecutive live events to the same group go as one `live.events` message (the socket sends each
    on as before): one group_send, so a few Redis round trips, for a batch instead of per event."""
    out: list[tuple[str, dict[str, Any]]] = []
    for group, message in items:
        if message.get("type") == "live.event" and out and out[-1][0] == group:
            last = out[-1][1]
            if last.get("type") == "live.event":
                last = {"type": "live.events", "events": [last]}
                out[-1] = (group, last)
            if last.get("type") == "live.events" and len(last["events"]) < LIVE_BUNDLE:
                last["events"].append(message)
                continue
        out.append((group, message))
    return out


def _send(items: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    items = _bundled(items)

    async def send_all() -> None:
        for group, message in items:
            await layer.group_send(group, message)

    async_to_sync(send_all)()
