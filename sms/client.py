"""The one client of Twilio's REST API: the `twilio` package, its base URL from settings, one pooled
HTTP session per account per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client


class RecordingHttpClient(TwilioHttpClient):
    """Keeps the last response, whose Retry-After the package's exceptions do not carry."""

    last: Response | None = None

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self.last = super().request(*args, **kwargs)
        return self.last


@lru_cache(maxsize=64)
def twilio_client(account_sid: str, auth_token: str) -> Client:
    client = Client(account_sid, auth_token, http_client=RecordingHttpClient(pool_connections=True, timeout=20))
    client.api.base_url = settings.TWILIO_API_BASE_URL  # an emulator in tests and the demo
    return client


def retry_after_of(client: Client) -> float | None:
    last = getattr(client.http_client, "last", None)
    value = (last.headers or {}).get("Retry-After") if last is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
