"""ASGI entry point: Django over HTTP, Channels over WebSocket (tenant from the Host header)."""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from tenants.channels import TenantWebsocketMiddleware  # noqa: E402
from whatsapp.webhooks import meta_webhook_asgi  # noqa: E402


async def livez(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Liveness at the ASGI layer: the server answers (the bare ceiling the intake benchmark compares to)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


# The hottest paths skip Django's request stack; everything else is Django.
FAST_PATHS = {("POST", "/webhooks/whatsapp/"): meta_webhook_asgi, ("GET", "/livez"): livez}


async def http_router(scope: dict[str, Any], receive: Any, send: Any) -> None:
    handler = FAST_PATHS.get((scope["method"], scope["path"]))
    await (handler or django_asgi_app)(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_router,
        "websocket": AllowedHostsOriginValidator(
            TenantWebsocketMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
