"""The one client of Meta's Graph API (WhatsApp Cloud API): a thin layer over a pooled httpx client.

We do not use `pywa`: it brings its own webhook server and handler framework, while we need a plain
client whose base URL points at an emulator in tests, whose errors we classify ourselves, and whose
connection pool we share across tasks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from django.conf import settings

from core import urlguard
from core.http import pooled_client


class GraphError(Exception):
    """An error answer from the Graph API (`code` as in Meta's error table), or no answer at all."""

    def __init__(
        self, status: int, code: int, message: str, details: str = "", sent: bool = True, subcode: int = 0
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details
        self.sent = sent  # False when the request surely never reached Meta (connection refused)
        self.subcode = subcode  # Meta's error_subcode (e.g. 36007: an authorization code that expired)


# Graph ids (phone number, WABA, media) and the version are single path segments of this alphabet.
GRAPH_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,128}(\.[0-9]{1,3})?$")
# Meta serves media downloads from its lookaside host (PROVIDERS.md §1.3).
META_MEDIA_HOSTS = ("lookaside.fbsbx.com",)


def graph_segment(value: str) -> str:
    """`value` as one URL path segment, or GraphError (permanent, nothing sent) when it is not a Graph id."""
    text = str(value)
    if not GRAPH_SEGMENT.match(text):
        raise GraphError(400, 100, "invalid Graph id in the request path")
    return text


def media_hosts() -> tuple[str, ...]:
    return (*META_MEDIA_HOSTS, urlguard.host_of(settings.META_GRAPH_BASE_URL))


class GraphClient:
    def __init__(self, access_token: str) -> None:
        self.http = pooled_client(settings.META_GRAPH_BASE_URL)
        self.version = settings.META_GRAPH_VERSION
        self.headers = {"Authorization": f"Bearer {access_token}"}

    def _request(self, method: str, *segments: str, bearer: bool = True, **kwargs: Any) -> dict[str, Any]:
        # Built from validated segments only: an id like "https://evil/" never becomes an absolute URL.
        url = "/" + "/".join([graph_segment(self.version), *(graph_segment(s) for s in segments)])
        try:
            response = self.http.request(method, url, headers=self.headers if bearer else {}, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise GraphError(0, -1, f"connection failed: {type(exc).__name__}", sent=False) from exc
        except httpx.HTTPError as exc:
            raise GraphError(0, -2, f"no answer: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
            except ValueError:
                error = {}
            raise GraphError(
                response.status_code,
                int(error.get("code", 0) or 0),
                str(error.get("message", response.reason_phrase)),
                str((error.get("error_data") or {}).get("details", "")),
                subcode=int(error.get("error_subcode", 0) or 0),
            )
        result: dict[str, Any] = response.json()
        return result

    def send_message(self, phone_number_id: str, payload: dict[str, Any]) -> str:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **payload}
        answer = self._request("POST", phone_number_id, "messages", json=body)
        return str(answer["messages"][0]["id"])

    def mark_read(self, phone_number_id: str, message_id: str) -> None:
        self._request(
            "POST",
            phone_number_id,
            "messages",
            json={"messaging_product": "whatsapp", "status": "read", "message_id": message_id},
        )

    def upload_media(self, phone_number_id: str, content: bytes, mime: str, filename: str) -> str:
        answer = self._request(
            "POST",
            phone_number_id,
            "media",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (filename or "file", content, mime)},
        )
        return str(answer["id"])

    def download_media(self, media_id: str) -> tuple[bytes, str]:
        """The media's URL comes in Graph's answer; it is fetched through the URL guard, from Meta's media
        host (or the configured Graph host, an emulator in tests) only."""
        info = self._request("GET", media_id)
        try:
            fetched = urlguard.fetch(
                str(info.get("url", "")),
                allowed_hosts=media_hosts(),
                headers=self.headers,
                max_bytes=settings.MEDIA_FETCH_MAX_BYTES,
            )
        except urlguard.FetchFailed as exc:
            # 131016 (service unavailable) is retried; 131052 (cannot download the media) is final.
            code = 131016 if exc.retryable else 131052
            raise GraphError(exc.status, code, f"media download failed: {exc.reason}") from exc
        return fetched.content, str(info.get("mime_type", "")) or fetched.content_type

    def templates(self, waba_id: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "fields": "name,status,category,language,components,parameter_format",
            "limit": page_size,
        }
        while True:
            page = self._request("GET", waba_id, "message_templates", params=params)
            yield from page.get("data", [])
            after = ((page.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (page.get("paging") or {}).get("next"):
                return
            params["after"] = after

    def create_template(self, waba_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", waba_id, "message_templates", json=body)

    # --- connecting a number: what the token can see ---
    def phone_number(self, phone_number_id: str) -> dict[str, Any]:
        """GET /{phone-number-id}: answers only when the token may use that number."""
        return self._request(
            "GET",
            phone_number_id,
            params={"fields": "id,display_phone_number,verified_name,quality_rating,is_on_biz_app"},
        )

    def waba_phone_numbers(self, waba_id: str) -> list[dict[str, Any]]:
        """GET /{waba-id}/phone_numbers: the numbers of a WhatsApp Business Account the token may see."""
        return list(self._request("GET", waba_id, "phone_numbers").get("data", []))

    def waba_owner(self, waba_id: str) -> dict[str, Any]:
        """GET /{waba-id}?fields=owner_business_info: the business portfolio that owns the WABA
        ({"id": ..., "name": ...}); business-scoped user ids (BSUIDs) are scoped to it."""
        answer = self._request("GET", waba_id, params={"fields": "id,name,owner_business_info"})
        owner: dict[str, Any] = answer.get("owner_business_info") or {}
        return owner

    def debug_token(self, *, app_id: str, app_secret: str, token: str) -> dict[str, Any]:
        """GET /debug_token with the app's own access token ("app_id|app_secret"): which app issued `token`.
        Only the right secret gets an answer, so this proves both the secret and the token's app."""
        answer = self._request(
            "GET",
            "debug_token",
            bearer=False,
            params={"input_token": token, "access_token": f"{app_id}|{app_secret}"},
        )
        data: dict[str, Any] = answer.get("data") or {}
        return data

    # --- Embedded Signup: the code, the number, the webhooks ---
    def exchange_code(self, *, app_id: str, app_secret: str, code: str) -> str:
        """GET /oauth/access_token: Embedded Signup's code (single use, short-lived) for a business token.
        Server to server only: the app secret never reaches a browser."""
        answer = self._request(
            "GET",
            "oauth",
            "access_token",
            bearer=False,
            params={"client_id": app_id, "client_secret": app_secret, "code": code},
        )
        return str(answer.get("access_token", ""))

    def register_number(self, phone_number_id: str, pin: str) -> None:
        """POST /{phone-number-id}/register: the number starts on Cloud API; `pin` sets its two-step PIN.
        Never for a number that stays on the WhatsApp Business app (coexistence)."""
        self._request("POST", phone_number_id, "register", json={"messaging_product": "whatsapp", "pin": pin})

    def subscribe_app(self, waba_id: str) -> None:
        """POST /{waba-id}/subscribed_apps: the app that owns the token gets this WABA's webhooks."""
        self._request("POST", waba_id, "subscribed_apps")
