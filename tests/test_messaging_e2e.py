"""The whole loop, as in production: the app served by uvicorn, a real Celery worker, and the Meta and
Twilio emulators calling the app's public webhooks back with real signatures."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from django.db import connection

from emulators.meta import MetaEmulator
from emulators.twilio import TwilioEmulator
from inbox.models import Direction, Message, MessageStatus
from inbox.services import message_send
from tenants.models import Tenant
from tests.conftest import SMS_NUMBER, WA_PNID
from tests.messaging import open_conversation
from tests.support import wait_until


def _status_of(tenant: Tenant, message_id: int) -> str:
    connection.set_tenant(tenant)
    return Message.objects.get(pk=message_id).status


def test_whatsapp_message_goes_out_and_comes_back_read(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    message = message_send(conversation=open_conversation(channels["whatsapp"], phone), body="Pedido confirmado!")
    wait_until(lambda: _status_of(alpha, message.pk) == MessageStatus.READ, timeout=30)
    connection.set_tenant(alpha)
    message.refresh_from_db()
    assert message.sent_at and message.delivered_at and message.read_at
    assert meta_emulator.sent[message.provider_message_id]["to"] == phone.lstrip("+")


def test_inbound_whatsapp_image_is_stored_with_its_media(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    jpeg = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes
    phone = f"55119{uuid.uuid4().int % 10**8:08d}"
    wamid = meta_emulator.inject_inbound(
        phone_number_id=WA_PNID,
        from_phone=phone,
        type="image",
        content={"caption": "olha isso"},
        media=base64.b64encode(jpeg).decode(),
    )

    def stored() -> bool:
        connection.set_tenant(alpha)
        found = Message.objects.filter(provider_message_id=wamid).first()
        return bool(found and found.media)

    wait_until(stored, timeout=30)
    connection.set_tenant(alpha)
    message = Message.objects.get(provider_message_id=wamid)
    assert (message.direction, message.type, message.body) == (Direction.INBOUND, "image", "olha isso")
    with message.media.open("rb") as fh:
        assert fh.read() == jpeg


def test_sms_goes_out_delivered_and_a_reply_comes_in(
    app_server: str,
    celery_worker: None,
    twilio_emulator: TwilioEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    message = message_send(conversation=open_conversation(channels["sms"], phone), body="Lembrete: consulta amanhã 10h")
    wait_until(lambda: _status_of(alpha, message.pk) == MessageStatus.DELIVERED, timeout=30)

    twilio_emulator.inject_inbound(to=SMS_NUMBER, from_phone=phone, body="Confirmo")

    def replied() -> bool:
        connection.set_tenant(alpha)
        return Message.objects.filter(
            conversation__contact__phone=phone, direction=Direction.INBOUND, body="Confirmo"
        ).exists()

    wait_until(replied, timeout=30)


def test_the_asgi_intake_path_verifies_and_stores_once(
    app_server: str, tenants: Any, channels: dict[str, int], committed: Any
) -> None:
    """Production's POST /webhooks/whatsapp/ skips Django's stack: same rules, checked over HTTP."""
    import hashlib
    import hmac
    import json
    import os

    import httpx

    from intake.models import WebhookEvent
    from tests.messaging import inbound, meta_envelope, meta_messages_value

    message_id = f"wamid.asgi.{uuid.uuid4().hex}"
    body = json.dumps(meta_envelope(meta_messages_value(messages=[inbound("text", message_id)]))).encode()
    good = "sha256=" + hmac.new(os.environ["META_APP_SECRET"].encode(), body, hashlib.sha256).hexdigest()
    url = f"{app_server}/webhooks/whatsapp/"
    assert httpx.post(url, content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}).status_code == 403
    assert httpx.post(url, content=body).status_code == 403
    connection.set_schema_to_public()
    assert not WebhookEvent.objects.filter(event_id=f"msg:{message_id}").exists()
    for _ in range(2):
        assert httpx.post(url, content=body, headers={"X-Hub-Signature-256": good}).status_code == 200
    assert WebhookEvent.objects.filter(event_id=f"msg:{message_id}").count() == 1
    assert (
        httpx.post(
            url,
            content=b"{not json",
            headers={
                "X-Hub-Signature-256": "sha256="
                + hmac.new(os.environ["META_APP_SECRET"].encode(), b"{not json", hashlib.sha256).hexdigest()
            },
        ).status_code
        == 400
    )
    verify = httpx.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "42"}
    )
    assert verify.status_code == 200 and verify.text == "42"
    assert httpx.get(f"{app_server}/livez").text == "ok"
