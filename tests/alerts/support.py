"""Helpers of the alerts tests: announce an alert event the way any app does, and listen to the staff
socket group of a tenant."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from core import events
from core.realtime import STAFF_TOPIC, group_name


def raise_(kind: str, key: str, **detail: Any) -> None:
    events.announce(events.ALERT_RAISED, connection.schema_name, {"kind": kind, "key": key, "detail": detail})


def clear(kind: str, key: str) -> None:
    events.announce(events.ALERT_CLEARED, connection.schema_name, {"kind": kind, "key": key})


class Listener:
    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.layer = get_channel_layer()
        self.socket = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(group_name(schema, STAFF_TOPIC), self.socket)

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        """Every event pushed to the group since this listener joined, in order (call once): a marker is
        pushed last and read up to, so this never waits for an event that is not coming."""
        from core.realtime import push

        push(self.schema, STAFF_TOPIC, "test.marker", {})
        found: list[tuple[str, dict[str, Any]]] = []

        async def drain() -> None:  # one event loop for every receive (the layer's buffer is bound to it)
            while True:
                message = await self.layer.receive(self.socket)
                if message.get("event") == "test.marker":
                    return
                found.append((str(message.get("event")), message.get("payload") or {}))

        async_to_sync(drain)()
        return found
