"""Helpers for messaging tests: Meta/Twilio webhook bodies signed as the providers sign them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any
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


def post_meta(body: dict[str, Any], secret: str | None = None) -> Any:
    raw = json.dumps(body).encode()
    key = (secret if secret is not None else os.environ["META_APP_SECRET"]).encode()
    signature = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
    return Client(HTTP_HOST="localhost").post(
        "/webhooks/whatsapp/", data=raw, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
    )


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
