"""The staff's live socket: one per open page, joined to the tenant's groups."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.middleware import SESSION_TENANT_KEY
from accounts.models import Membership
from core.realtime import MANAGERS_TOPIC, STAFF_TOPIC, group_name, user_topic


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups: list[str] = []

    async def connect(self) -> None:
        tenant = self.scope["tenant"]
        user = self.scope.get("user")
        session = self.scope.get("session")
        if not user or not user.is_authenticated or session is None:
            await self.close(code=4401)
            return
        membership = await self._membership(user.pk, tenant.pk)
        if session.get(SESSION_TENANT_KEY) != tenant.schema_name or membership is None:
            await self.close(code=4403)
            return
        self.groups = [group_name(tenant.schema_name, STAFF_TOPIC), group_name(tenant.schema_name, user_topic(user.pk))]
        if membership.is_manager:
            self.groups.append(group_name(tenant.schema_name, MANAGERS_TOPIC))
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "hello", "payload": {"tenant": tenant.slug}})

    async def disconnect(self, code: int) -> None:
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "ping":
            await self.send_json({"event": "pong", "payload": {}})

    async def live_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"event": message["event"], "payload": message["payload"]})

    @database_sync_to_async
    def _membership(self, user_id: int, tenant_id: int) -> Membership | None:
        return Membership.objects.filter(user_id=user_id, tenant_id=tenant_id).first()
