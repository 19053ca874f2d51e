from __future__ import annotations

import uuid

import pytest
from django.db import connection

from crm.models import ConsentStatus, Contact
from inbox.ingest import drain_batch
from inbox.models import Direction, Message, MessageStatus
from intake.models import WebhookEvent
from tenants.models import Tenant
from tests.conftest import SMS_NUMBER, TWILIO_SID, TWILIO_TOKEN
from tests.messaging import open_conversation, post_twilio

pytestmark = pytest.mark.django_db


def sid() -> str:
    return "SM" + uuid.uuid4().hex


def inbound_params(body: str, sender: str = "+5511987650000", **extra: str) -> dict[str, str]:
    message_sid = sid()
    return {
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "AccountSid": TWILIO_SID,
        "From": sender,
        "To": SMS_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def drain_in(tenant: Tenant) -> None:
    drain_batch()
    connection.set_tenant(tenant)


def test_signed_inbound_sms_is_stored_once_and_applied(tenant_a: Tenant, channels: dict[str, int]) -> None:
    params = inbound_params("Olá, vocês abrem amanhã?")
    response = post_twilio("/webhooks/twilio/inbound/", params, TWILIO_TOKEN)
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    post_twilio("/webhooks/twilio/inbound/", params, TWILIO_TOKEN)  # a retry
    assert WebhookEvent.objects.filter(provider="twilio", event_id=f"in:{params['MessageSid']}").count() == 1
    drain_in(tenant_a)
    message = Message.objects.get(provider_message_id=params["MessageSid"])
    assert (message.direction, message.type, message.body) == (Direction.INBOUND, "text", "Olá, vocês abrem amanhã?")
    assert message.conversation.channel_id == channels["sms"]


def test_bad_or_missing_signature_is_403(channels: dict[str, int]) -> None:
    params = inbound_params("x")
    assert post_twilio("/webhooks/twilio/inbound/", params, "wrong-token").status_code == 403
    tampered = dict(params, Body="changed after signing")
    from tests.messaging import RequestValidator  # type: ignore[attr-defined]

    signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://localhost/webhooks/twilio/inbound/", params)
    from urllib.parse import urlencode

    from django.test import Client

    response = Client(HTTP_HOST="localhost").post(
        "/webhooks/twilio/inbound/",
        data=urlencode(tampered),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code == 403
    assert not WebhookEvent.objects.filter(event_id=f"in:{params['MessageSid']}").exists()


def test_unknown_number_is_refused(channels: dict[str, int]) -> None:
    params = dict(inbound_params("x"), To="+5511000000000")
    assert post_twilio("/webhooks/twilio/inbound/", params, TWILIO_TOKEN).status_code == 403


def test_mms_media_reference_is_kept(tenant_a: Tenant, channels: dict[str, int]) -> None:
    params = inbound_params(
        "foto", NumMedia="1", MediaUrl0="http://127.0.0.1:9/media/ME1", MediaContentType0="image/jpeg"
    )
    post_twilio("/webhooks/twilio/inbound/", params, TWILIO_TOKEN)
    drain_in(tenant_a)
    message = Message.objects.get(provider_message_id=params["MessageSid"])
    assert (message.type, message.provider_media_id, message.media_mime) == (
        "image",
        "http://127.0.0.1:9/media/ME1",
        "image/jpeg",
    )


def test_status_callbacks_move_forward_and_record_failures(tenant_a: Tenant, channels: dict[str, int]) -> None:
    connection.set_tenant(tenant_a)
    conversation = open_conversation(channels["sms"], "+5511987651111")
    ours = Message.objects.create(
        conversation=conversation,
        channel_id=channels["sms"],
        direction=Direction.OUTBOUND,
        body="x",
        status=MessageStatus.SENT,
        provider_message_id=sid(),
        idempotency_key=uuid.uuid4().hex,
    )
    base = {
        "MessageSid": ours.provider_message_id,
        "AccountSid": TWILIO_SID,
        "From": SMS_NUMBER,
        "To": "+5511987651111",
    }
    post_twilio("/webhooks/twilio/status/", dict(base, MessageStatus="delivered"), TWILIO_TOKEN)
    post_twilio("/webhooks/twilio/status/", dict(base, MessageStatus="sent"), TWILIO_TOKEN)  # late
    drain_in(tenant_a)
    ours.refresh_from_db()
    assert ours.status == MessageStatus.DELIVERED

    other = Message.objects.create(
        conversation=conversation,
        channel_id=channels["sms"],
        direction=Direction.OUTBOUND,
        body="y",
        status=MessageStatus.SENT,
        provider_message_id=sid(),
        idempotency_key=uuid.uuid4().hex,
    )
    post_twilio(
        "/webhooks/twilio/status/",
        dict(base, MessageSid=other.provider_message_id, MessageStatus="undelivered", ErrorCode="30003"),
        TWILIO_TOKEN,
    )
    drain_in(tenant_a)
    other.refresh_from_db()
    assert (other.status, other.error_code) == (MessageStatus.FAILED, "30003")


@pytest.mark.parametrize(
    ("word", "medium_channel", "expected"),
    [
        ("STOP", "sms", ConsentStatus.OPTED_OUT),
        ("  sair ", "whatsapp", ConsentStatus.OPTED_OUT),
        ("Parar", "whatsapp", ConsentStatus.OPTED_OUT),
        ("DESCADASTRAR", "sms", ConsentStatus.OPTED_OUT),
        ("cancelar", "sms", ConsentStatus.OPTED_OUT),
        ("unsubscribe", "whatsapp", ConsentStatus.OPTED_OUT),
        ("START", "sms", ConsentStatus.OPTED_IN),
        ("unstop", "whatsapp", ConsentStatus.OPTED_IN),
        ("yes", "sms", ConsentStatus.OPTED_IN),
        ("yes", "whatsapp", None),
        ("stop sending me this", "sms", None),
    ],
)
def test_consent_keywords(
    word: str, medium_channel: str, expected: str | None, tenant_a: Tenant, channels: dict[str, int]
) -> None:
    from django.utils import timezone

    from inbox.models import Channel
    from inbox.providers import InboundMessage
    from inbox.services import inbound_apply

    connection.set_tenant(tenant_a)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    channel = Channel.objects.get(pk=channels[medium_channel])
    inbound_apply(
        channel=channel,
        event=InboundMessage(
            provider_message_id=sid(), from_phone=phone, type="text", timestamp=timezone.now(), body=word
        ),
    )
    contact = Contact.objects.get(phone=phone)
    consent = contact.consents.filter(medium="sms" if medium_channel == "sms" else "whatsapp").first()
    assert (consent.status if consent else None) == expected
    confirmations = Message.objects.filter(conversation__contact=contact, direction=Direction.OUTBOUND)
    assert confirmations.count() == (1 if expected else 0)
    if expected == ConsentStatus.OPTED_OUT:
        assert "START" in confirmations.get().body  # pt-BR tenant: the confirmation says how to come back
