"""The staff's live socket: one per open page, joined to the tenant's groups."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.middleware import SESSION_TENANT_KEY
from accounts.models import Membership
from core.realtime import CLIENT_EVENTS, MANAGERS_TOPIC, STAFF_TOPIC, audience_admits, group_name, user_topic
from core.roles import MANAGERS

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups: list[str] = []
    role: str | None = None
    user_id: int = 0

    async def connect(self) -> None:
        tenant = self.scope["tenant"]
        user = self.scope.get("user")
        session = self.scope.get("session")
        if not user or not user.is_authenticated or session is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        self.role = await self._role()
        if session.get(SESSION_TENANT_KEY) != tenant.schema_name or self.role is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.groups = [group_name(tenant.schema_name, STAFF_TOPIC), group_name(tenant.schema_name, user_topic(user.pk))]
        if self.role in MANAGERS:  # the QR code and pairing code go to managers only
            self.groups.append(group_name(tenant.schema_name, MANAGERS_TOPIC))
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "hello", "payload": {"tenant": tenant.slug}})

    async def disconnect(self, code: int) -> None:
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("event") == "ping":
            await self.send_json({"event": "pong", "payload": {}})
            return
        handler = CLIENT_EVENTS.get(str(content.get("event", "")))
        payload = content.get("payload")
        if handler is not None and isinstance(payload, dict) and self.groups:
            await database_sync_to_async(handler)(self.scope["tenant"].schema_name, self.user_id, self.role, payload)

    async def live_event(self, message: dict[str, Any]) -> None:
        # An event with an audience (a conversation an agent may not see) reaches only those it names.
        if not audience_admits(message.get("audience"), role=self.role, user_id=self.user_id):
            return
        await self.send_json({"event": message["event"], "payload": message["payload"]})

    async def live_events(self, message: dict[str, Any]) -> None:
        """Several live events in one layer message (core.realtime bundles a batch): each as live_event."""
        for event in message.get("events", []):
            await self.live_event(event)

    async def member_control(self, message: dict[str, Any]) -> None:
        """Sent to the member's own group when they are removed (close) or their role changes (refresh)."""
        if message.get("op") == "refresh":
            self.role = await self._role()
            if self.role is not None:
                return
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups = []
        await self.close(code=CLOSE_FORBIDDEN)

    @database_sync_to_async
    def _role(self) -> str | None:
        role = (
            Membership.objects.filter(user_id=self.user_id, tenant_id=self.scope["tenant"].pk)
            .values_list("role", flat=True)
            .first()
        )
        return str(role) if role is not None else None
