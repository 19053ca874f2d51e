"""Helpers for messaging tests: Meta/Twilio webhook bodies signed as the providers sign them, posted where
production receives them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

from django.test import Client
from django.utils import timezone
from twilio.request_validator import RequestValidator

from crm.models import Contact
from inbox.models import Channel, Conversation

FIXTURES = Path(__file__).parent / "whatsapp" / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def meta_envelope(value: dict[str, Any], field: str = "messages", entry_id: str = "200000000000001") -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": entry_id, "time": int(time.time()), "changes": [{"field": field, "value": value}]}],
    }


def meta_messages_value(
    *,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    sender: str = "5511987654321",
    name: str = "Ana",
    pnid: str = "100000000000001",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511911110000", "phone_number_id": pnid},
    }
    if messages is not None:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": sender}]
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return value


def inbound(kind: str, wamid: str, sender: str = "5511987654321") -> dict[str, Any]:
    return {"from": sender, "id": wamid, "timestamp": str(int(time.time())), **fixture("inbound_messages.json")[kind]}


def status(kind: str, wamid: str, recipient: str = "5511987654321") -> dict[str, Any]:
    return {
        "id": wamid,
        "recipient_id": recipient,
        "timestamp": str(int(time.time())),
        **fixture("statuses.json")[kind],
    }


class Answer(NamedTuple):
    status_code: int
    content: bytes


# Meta events post_meta stored (committed, by the intake's own pool) in the running test: the suite's
# teardown hook deletes them once the test's transaction is rolled back (see tests/conftest.py).
POSTED_EVENTS: list[str] = []
_loop: asyncio.AbstractEventLoop | None = None


def _asgi_loop() -> asyncio.AbstractEventLoop:
    """One event loop for the session (the intake's async pool belongs to the loop that opened it)."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        threading.Thread(target=_loop.run_forever, name="asgi-test-loop", daemon=True).start()
    return _loop


def asgi_close() -> None:
    """End of session: close the intake pool the in-process ASGI app opened (before the test database goes)."""
    from intake import aio

    if _loop is not None and aio._pool is not None:
        asyncio.run_coroutine_threadsafe(aio._pool.close(), _loop).result(timeout=30)
        aio._pool = None


async def _asgi_post(path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    from config.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # nothing more: the app has the whole body
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await application(scope, receive, send)
    return Answer(status, b"".join(chunks))


def post_meta(body: dict[str, Any], secret: str | None = None, *, unsigned: bool = False) -> Answer:
    """POST a signed Meta webhook to the ASGI application, the path production serves it on: the fast
    intake stores it with its own connection (committed). A running test worker stops consuming the
    ingest queue until the test ends, so the test's own drain is the one that applies these events."""
    from intake.services import _bounded_event_id
    from tests.conftest import intake_hold
    from whatsapp.webhooks import split_events

    raw = json.dumps(body).encode()
    key = (secret if secret is not None else os.environ["META_APP_SECRET"]).encode()
    signature = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
    headers = [(b"content-type", b"application/json")]
    if not unsigned:
        headers.append((b"x-hub-signature-256", signature.encode()))
    intake_hold()
    answer = asyncio.run_coroutine_threadsafe(_asgi_post("/webhooks/whatsapp/", headers, raw), _asgi_loop()).result(
        timeout=20  # a redelivery of an event this test's drain has locked would wait: use store_meta for it
    )
    if answer.status_code == 200:
        POSTED_EVENTS.extend(_bounded_event_id(event.event_id) for event in split_events(body))
    return answer


def store_meta(body: dict[str, Any]) -> int:
    """A redelivery after the test's own drain: the intake's INSERT (the one the ASGI path runs) on the
    test's connection, since the test's transaction holds the rows that drain marked. How many were new."""
    from intake.services import events_store
    from whatsapp.webhooks import split_events

    return events_store(provider="meta", events=split_events(body))


def post_twilio(path: str, params: dict[str, str], token: str) -> Any:
    url = f"{os.environ['PUBLIC_WEBHOOK_BASE_URL']}{path}"
    signature = RequestValidator(token).compute_signature(url, params)
    return Client(HTTP_HOST="localhost").post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def open_conversation(channel_id: int, phone: str = "+5511987654321", *, window_open: bool = True) -> Conversation:
    contact, _ = Contact.objects.get_or_create(phone=phone)
    conversation, _ = Conversation.objects.get_or_create(contact=contact, channel=Channel.objects.get(pk=channel_id))
    if window_open:
        conversation.last_inbound_at = timezone.now()
        conversation.save(update_fields=["last_inbound_at"])
    return conversation
