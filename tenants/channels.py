"""Tenant resolution for WebSockets: the Host header picks the schema, as for HTTP."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from tenants.selectors import tenant_for_hostname


class TenantWebsocketMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        host = headers.get(b"host", b"").decode("latin-1")
        tenant = await database_sync_to_async(tenant_for_hostname)(host)
        if tenant is None or tenant.schema_name == "public" or not tenant.is_active:
            await send({"type": "websocket.close", "code": 4404})
            return None
        return await self.inner(dict(scope, tenant=tenant), receive, send)
