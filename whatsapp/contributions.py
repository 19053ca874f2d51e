"""What WhatsApp adds to the channels page: the "Connect WhatsApp" button (Meta's Embedded Signup)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from django.template.loader import render_to_string

from core.contributions import CHANNEL_CONNECT, PageBlock, contribute
from core.roles import Action, role_allows
from whatsapp.signup import signup_config


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def embedded_signup_block(*, request: HttpRequest, **kwargs: Any) -> list[PageBlock]:
    if not role_allows(getattr(request, "membership", None), Action.CHANNEL_MANAGE):
        return []
    config = signup_config()
    html = render_to_string("whatsapp/_embedded_signup.html", {"signup": config}, request=request)
    if config is None:
        return [PageBlock(html=html)]
    origins = config["origins"].split()
    return [
        PageBlock(
            html=html,
            # Meta's SDK script, and the frames and requests it makes to Meta's login origin
            csp={"script-src": [_origin(config["sdk_url"])], "frame-src": origins, "connect-src": origins},
            opener_policy="same-origin-allow-popups",  # Meta's window posts its messages back to this page
        )
    ]


def connect() -> None:
    contribute(CHANNEL_CONNECT, embedded_signup_block)
