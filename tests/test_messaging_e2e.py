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
from tests.conftest import SMS_NUMBER
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
        phone_number_id="pnid-alpha",
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
