"""Outbound through the real provider clients, over HTTP, against the Meta and Twilio emulators."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils import timezone, translation

from crm.models import ConsentStatus
from crm.services import consent_record
from emulators.meta import MetaEmulator
from emulators.twilio import TwilioEmulator
from inbox.models import Channel, Message, MessageStatus
from inbox.providers import ErrorKind, ProviderError, provider_for
from inbox.services import message_dispatch, message_send
from tests.messaging import open_conversation

pytestmark = pytest.mark.django_db


def send_now(**kwargs: Any) -> Message:
    message = message_send(**kwargs)
    message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    return message


def test_text_reaches_the_graph_emulator_and_records_the_wamid(
    in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    conversation = open_conversation(channels["whatsapp"])
    message = send_now(conversation=conversation, body="Seu pedido saiu para entrega https://loja.example/p/1")
    assert message.status == MessageStatus.SENT and message.sent_at is not None
    sent = meta_emulator.sent[message.provider_message_id]
    assert sent["to"] == "5511987654321" and sent["type"] == "text"
    assert sent["text"] == {"body": "Seu pedido saiu para entrega https://loja.example/p/1", "preview_url": True}
    assert sent["biz_opaque_callback_data"] == str(message.pk)


OUTBOUND: dict[str, dict[str, Any]] = {
    "document": dict(
        type="document", media_url="https://files.example/boleto.pdf", media_filename="boleto.pdf", body="Seu boleto"
    ),
    "video": dict(type="video", media_url="https://files.example/v.mp4"),
    "audio": dict(type="audio", media_url="https://files.example/a.ogg"),
    "location": dict(
        type="location", payload={"latitude": -23.55, "longitude": -46.63, "name": "Loja", "address": "Rua A"}
    ),
    "buttons": dict(
        type="interactive",
        payload={
            "type": "button",
            "body": {"text": "Confirma?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Sim"}},
                    {"type": "reply", "reply": {"id": "no", "title": "Não"}},
                ]
            },
        },
    ),
    "list": dict(
        type="interactive",
        payload={
            "type": "list",
            "body": {"text": "Escolha"},
            "action": {
                "button": "Opções",
                "sections": [{"title": "Entrega", "rows": [{"id": "r1", "title": "Hoje", "description": "Até 18h"}]}],
            },
        },
    ),
    "reaction": dict(type="reaction", payload={"message_id": "wamid.THEIRS", "emoji": "❤️"}),
}


@pytest.mark.parametrize("name", sorted(OUTBOUND))
def test_each_outbound_type_is_sent_in_the_graph_format(
    name: str, in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    spec = dict(OUTBOUND[name])
    message = send_now(conversation=open_conversation(channels["whatsapp"]), **spec)
    assert message.status == MessageStatus.SENT, message.error_text
    sent = meta_emulator.sent[message.provider_message_id]
    kind = spec["type"]
    assert sent["type"] == kind
    if name == "document":
        assert sent["document"] == {
            "link": "https://files.example/boleto.pdf",
            "caption": "Seu boleto",
            "filename": "boleto.pdf",
        }
    elif kind in {"video", "audio"}:
        assert sent[kind] == {"link": spec["media_url"]}
    else:
        assert sent[kind] == spec["payload"]


def test_uploaded_image_goes_through_the_media_endpoint(
    in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    message = send_now(
        conversation=open_conversation(channels["whatsapp"]),
        type="image",
        body="catálogo",
        media=ContentFile(png, name="catalogo.png"),
        media_mime="image/png",
    )
    assert message.status == MessageStatus.SENT, message.error_text
    sent = meta_emulator.sent[message.provider_message_id]
    media_id = sent["image"]["id"]
    assert meta_emulator.media[media_id] == (png, "image/png")
    assert sent["image"]["caption"] == "catálogo"


def test_template_with_header_body_and_button_variables(
    in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511966665555", window_open=False)
    message = send_now(
        conversation=conversation,
        type="template",
        template_name="order_update",
        template_language="pt_BR",
        template_variables={
            "header": [{"type": "image", "link": "https://img.example/p.jpg"}],
            "body": ["Ana", "#123"],
            "buttons": [{"sub_type": "quick_reply", "index": 0, "payload": "CONFIRM"}],
        },
    )
    assert message.status == MessageStatus.SENT, message.error_text
    template = meta_emulator.sent[message.provider_message_id]["template"]
    assert template["name"] == "order_update" and template["language"] == {"code": "pt_BR"}
    assert template["components"] == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://img.example/p.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#123"}]},
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "CONFIRM"}],
        },
    ]


def test_free_form_needs_the_24_hour_window_templates_do_not(in_tenant_a: Any, channels: dict[str, int]) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511955554444", window_open=False)
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        message_send(conversation=conversation, body="oi")
    assert refused.value.code == "window_closed"
    assert "template" in refused.value.messages[0]
    assert message_send(conversation=conversation, type="template", template_name="hello", template_language="pt_BR")
    # SMS has no such window
    sms = open_conversation(channels["sms"], "+5511955554444", window_open=False)
    assert message_send(conversation=sms, body="oi").status == MessageStatus.QUEUED


def test_consent_rules_for_marketing_and_replies(in_tenant_a: Any, channels: dict[str, int]) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511944443333")
    contact = conversation.contact
    consent_record(contact=contact, medium="whatsapp", status=ConsentStatus.MARKETING_OPTED_OUT, source="test")
    with pytest.raises(ValidationError) as refused:
        message_send(
            conversation=conversation,
            type="template",
            template_name="promo",
            template_language="pt_BR",
            is_marketing=True,
        )
    assert refused.value.code == "opted_out"
    assert message_send(conversation=conversation, body="reply inside the conversation")  # still allowed
    consent_record(contact=contact, medium="whatsapp", status=ConsentStatus.OPTED_OUT, source="test")
    with pytest.raises(ValidationError):
        message_send(conversation=conversation, body="not even a reply")
    # consent is per medium: SMS is unaffected
    assert message_send(
        conversation=open_conversation(channels["sms"], "+5511944443333"), body="sms ok", is_marketing=True
    )


def test_the_same_idempotency_key_never_makes_two_messages(in_tenant_a: Any, channels: dict[str, int]) -> None:
    conversation = open_conversation(channels["whatsapp"])
    key = f"campaign-7:{uuid.uuid4().hex}"
    first = message_send(conversation=conversation, body="x", idempotency_key=key)
    second = message_send(conversation=conversation, body="x", idempotency_key=key)
    assert first.pk == second.pk
    assert Message.objects.filter(idempotency_key=key).count() == 1


def test_a_message_is_claimed_once(in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator) -> None:
    message = message_send(conversation=open_conversation(channels["whatsapp"]), body="once")
    before = len(meta_emulator.sent)
    assert message_dispatch(message_id=message.pk) is None
    assert message_dispatch(message_id=message.pk) is None  # already sent: no second request
    assert len(meta_emulator.sent) == before + 1


@pytest.mark.parametrize(
    ("code", "kind", "final_status"),
    [
        (130429, ErrorKind.RETRYABLE, MessageStatus.QUEUED),
        (131056, ErrorKind.RETRYABLE, MessageStatus.QUEUED),
        (131000, ErrorKind.RETRYABLE, MessageStatus.QUEUED),
        (190, ErrorKind.PERMANENT, MessageStatus.FAILED),
        (131026, ErrorKind.PERMANENT, MessageStatus.FAILED),
        (131047, ErrorKind.PERMANENT, MessageStatus.FAILED),
        (131050, ErrorKind.PERMANENT, MessageStatus.FAILED),
    ],
)
def test_graph_errors_map_to_the_right_class(
    code: int,
    kind: ErrorKind,
    final_status: str,
    in_tenant_a: Any,
    channels: dict[str, int],
    meta_emulator: MetaEmulator,
) -> None:
    channel = Channel.objects.get(pk=channels["whatsapp"])
    meta_emulator.fail_next.append(code)
    from inbox.providers import OutboundMessage

    with pytest.raises(ProviderError) as raised:
        provider_for(channel).send(OutboundMessage(to="+5511987654321", type="text", body="x"))
    assert raised.value.kind == kind and raised.value.code == str(code)

    meta_emulator.fail_next.append(code)
    conversation = open_conversation(channels["whatsapp"], "+5511933332222")
    message = message_send(conversation=conversation, body="x")
    before = timezone.now()
    message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == final_status and message.error_code == str(code)
    # A retry is the row's due time (never a countdown task); a final error has none.
    assert (message.next_attempt_at is not None and message.next_attempt_at >= before) == (kind == ErrorKind.RETRYABLE)
    if code == 131050:
        assert conversation.contact.consents.get(medium="whatsapp").status == ConsentStatus.MARKETING_OPTED_OUT


def test_rate_limit_per_channel_defers_the_next_send(
    in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    Channel.objects.filter(pk=channels["whatsapp"]).update(rate_limit_per_s=1)
    conversation = open_conversation(channels["whatsapp"])
    first = message_send(conversation=conversation, body="1")
    second = message_send(conversation=conversation, body="2")
    message_dispatch(message_id=first.pk)
    before = timezone.now()
    message_dispatch(message_id=second.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == MessageStatus.SENT
    assert second.status == MessageStatus.QUEUED and second.attempts == 0  # given back: no attempt spent
    assert before < second.next_attempt_at <= before + timedelta(seconds=1.05)


def test_sms_send_and_twilio_errors(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    ok = send_now(conversation=open_conversation(channels["sms"], "+5511922221111"), body="Seu código: 1234")
    assert ok.status == MessageStatus.SENT and ok.provider_message_id.startswith("SM")
    record = twilio_emulator.sent[ok.provider_message_id]
    assert (record["to"], record["from"], record["body"]) == ("+5511922221111", "+5511900000001", "Seu código: 1234")

    twilio_emulator.fail_next.append(20429)
    throttled = message_send(conversation=open_conversation(channels["sms"], "+5511922221112"), body="x")
    before = timezone.now()
    message_dispatch(message_id=throttled.pk)
    throttled.refresh_from_db()
    assert (throttled.status, throttled.error_code) == (MessageStatus.QUEUED, "20429")
    # Twilio's Retry-After (1 s), read from this request's own answer, is the next due time.
    assert timedelta(seconds=0.9) < throttled.next_attempt_at - before < timedelta(seconds=1.5)

    twilio_emulator.unsubscribed.add("+5511922221113")
    stopped_conversation = open_conversation(channels["sms"], "+5511922221113")
    stopped = send_now(conversation=stopped_conversation, body="x")
    assert (stopped.status, stopped.error_code) == (MessageStatus.FAILED, "21610")
    assert stopped_conversation.contact.consents.get(medium="sms").status == ConsentStatus.OPTED_OUT

    channel = Channel.objects.get(pk=channels["sms"])
    from inbox.providers import OutboundMessage

    with pytest.raises(ProviderError) as invalid:
        provider_for(channel).send(OutboundMessage(to="+12", type="text", body="x"))
    assert (invalid.value.kind, invalid.value.code) == (ErrorKind.PERMANENT, "21211")


def test_emulators_can_fail_at_a_set_rate(twilio_emulator: TwilioEmulator, meta_emulator: MetaEmulator) -> None:
    import httpx

    httpx.post(f"{twilio_emulator.base_url}/_emulator/errors", json={"code": 20429, "rate": 1.0})
    httpx.post(f"{meta_emulator.base_url}/_emulator/errors", json={"code": 130429, "count": 0, "rate": 1.0})
    try:
        from tests.conftest import TWILIO_SID, TWILIO_TOKEN

        twilio = httpx.post(
            f"{twilio_emulator.base_url}/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
            auth=(TWILIO_SID, TWILIO_TOKEN),
            data={"To": "+5511911112222", "From": "+5511900000001", "Body": "x"},
        )
        assert twilio.status_code == 429 and twilio.headers["Retry-After"] == "1" and twilio.json()["code"] == 20429
        meta = httpx.post(
            f"{meta_emulator.base_url}/v21.0/100000000000001/messages",
            headers={"Authorization": "Bearer test-token"},
            json={"messaging_product": "whatsapp", "to": "5511911112222", "type": "text", "text": {"body": "x"}},
        )
        assert meta.json()["error"]["code"] == 130429
    finally:
        httpx.post(f"{twilio_emulator.base_url}/_emulator/errors", json={"code": 20429, "rate": 0.0})
        httpx.post(f"{meta_emulator.base_url}/_emulator/errors", json={"code": 130429, "count": 0, "rate": 0.0})


@pytest.mark.parametrize(("kind", "code"), [("whatsapp", 190), ("sms", 20003)])
def test_credentials_refused_raise_the_channel_alert_and_the_next_send_clears_it(
    kind: str,
    code: int,
    in_tenant_a: Any,
    channels: dict[str, int],
    meta_emulator: MetaEmulator,
    twilio_emulator: TwilioEmulator,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from alerts.models import Alert

    emulator = meta_emulator if kind == "whatsapp" else twilio_emulator
    conversation = open_conversation(channels[kind], "+5511933334444")
    emulator.fail_next.extend([code, code])
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            failed = message_send(conversation=conversation, body="x")
            message_dispatch(message_id=failed.pk)
        failed.refresh_from_db()
        assert (failed.status, failed.error_code) == (MessageStatus.FAILED, str(code))
    alert = Alert.objects.get(kind="channel.token_rejected", key=str(channels[kind]), resolved_at=None)
    assert alert.count == 2 and alert.detail["code"] == str(code)
    assert alert.detail["provider"] == ("Meta" if kind == "whatsapp" else "Twilio")
    with django_capture_on_commit_callbacks(execute=True):
        ok = message_send(conversation=conversation, body="de novo")
        message_dispatch(message_id=ok.pk)
    ok.refresh_from_db()
    assert ok.status == MessageStatus.SENT
    alert.refresh_from_db()
    assert alert.resolution == "cleared"
