from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from crm.models import ConsentStatus, Contact, ContactConsent
from inbox.ingest import drain_batch
from inbox.models import Direction, Message, MessageStatus
from intake.models import WebhookEvent
from tenants.models import Tenant
from tests.messaging import (
    fixture,
    inbound,
    meta_envelope,
    meta_messages_value,
    open_conversation,
    post_meta,
    status,
    store_meta,
)

pytestmark = pytest.mark.django_db


def wamid() -> str:
    return f"wamid.{uuid.uuid4().hex}"


def drain_in(tenant: Tenant) -> None:
    drain_batch()
    connection.set_tenant(tenant)


def test_verification_handshake_echoes_the_challenge() -> None:
    client = Client(HTTP_HOST="localhost")
    ok = client.get(
        "/webhooks/whatsapp/",
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200 and ok.content == b"1158201444"
    bad = client.get(
        "/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}
    )
    assert bad.status_code == 403


def test_bad_signature_is_403_and_nothing_is_stored(channels: dict[str, int]) -> None:
    body = meta_envelope(meta_messages_value(messages=[inbound("text", wamid())]))
    before = WebhookEvent.objects.count()
    assert post_meta(body, secret="not-the-app-secret").status_code == 403
    assert post_meta(body, unsigned=True).status_code == 403
    assert WebhookEvent.objects.count() == before


EXPECTED = {
    "text": ("text", "Oi, tudo bem?"),
    "image": ("image", "foto do produto"),
    "audio": ("audio", ""),
    "video": ("video", ""),
    "document": ("document", "segue"),
    "sticker": ("sticker", ""),
    "location": ("location", "Loja Centro · Praça da Sé, São Paulo"),
    "contacts": ("contacts", "Maria Souza"),
    "button_reply": ("interactive", "Sim"),
    "list_reply": ("interactive", "Entrega"),
    "template_button": ("interactive", "Confirmar"),
    "reaction": ("reaction", "👍"),
    "order": ("unsupported", ""),
    "unsupported": ("unsupported", ""),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_inbound_type_is_stored_once(kind: str, tenant_a: Tenant, channels: dict[str, int]) -> None:
    message_id = wamid()
    body = meta_envelope(meta_messages_value(messages=[inbound(kind, message_id)], name="Ana Cliente"))
    assert post_meta(body).status_code == 200
    assert post_meta(body).status_code == 200  # Meta redelivers: stored once
    assert WebhookEvent.objects.filter(provider="meta", event_id=f"msg:{message_id}").count() == 1
    drain_in(tenant_a)
    message = Message.objects.get(provider_message_id=message_id)
    expected_type, expected_body = EXPECTED[kind]
    assert (message.type, message.body, message.direction) == (expected_type, expected_body, Direction.INBOUND)
    assert message.conversation.contact.phone == "+5511987654321"
    assert message.conversation.contact.wa_profile_name == "Ana Cliente"
    assert message.conversation.last_inbound_at is not None and message.conversation.unread_count >= 1
    if kind in {"image", "audio", "video", "document", "sticker"}:
        assert message.provider_media_id == "MEDIA_ID"
    if kind == "document":
        assert message.media_filename == "boleto.pdf"
    if kind == "location":
        assert message.payload["latitude"] == -23.5505
    if kind == "template_button":
        assert message.reply_to_provider_id == "wamid.TEMPLATE"
    # a second delivery of the same message changes nothing
    assert store_meta(body) == 0
    drain_in(tenant_a)
    assert Message.objects.filter(provider_message_id=message_id).count() == 1


def _outbound(channel_id: int, provider_id: str, status_value: str = MessageStatus.SENT) -> Message:
    conversation = open_conversation(channel_id)
    return Message.objects.create(
        conversation=conversation,
        channel_id=channel_id,
        direction=Direction.OUTBOUND,
        body="olá",
        status=status_value,
        provider_message_id=provider_id,
        idempotency_key=uuid.uuid4().hex,
    )


def test_statuses_only_move_forward(tenant_a: Tenant, channels: dict[str, int]) -> None:
    connection.set_tenant(tenant_a)
    ours = _outbound(channels["whatsapp"], wamid())
    for step in ("read", "delivered", "sent"):  # out of order: read arrives first
        post_meta(meta_envelope(meta_messages_value(statuses=[status(step, ours.provider_message_id)])))
    drain_in(tenant_a)
    ours.refresh_from_db()
    assert ours.status == MessageStatus.READ
    assert ours.read_at and ours.delivered_at and ours.sent_at
    # a failure after read changes nothing
    post_meta(meta_envelope(meta_messages_value(statuses=[status("failed", ours.provider_message_id)])))
    drain_in(tenant_a)
    ours.refresh_from_db()
    assert ours.status == MessageStatus.READ and ours.error_code == ""


def test_failed_status_records_the_error(tenant_a: Tenant, channels: dict[str, int]) -> None:
    connection.set_tenant(tenant_a)
    ours = _outbound(channels["whatsapp"], wamid())
    post_meta(meta_envelope(meta_messages_value(statuses=[status("failed", ours.provider_message_id)])))
    drain_in(tenant_a)
    ours.refresh_from_db()
    assert ours.status == MessageStatus.FAILED
    assert ours.error_code == "131026"
    assert "not a valid WhatsApp user" in ours.error_text


def test_a_status_that_arrives_before_its_message_is_applied_later(tenant_a: Tenant, channels: dict[str, int]) -> None:
    early = wamid()
    post_meta(meta_envelope(meta_messages_value(statuses=[status("delivered", early)])))
    drain_in(tenant_a)
    event = WebhookEvent.objects.get(event_id=f"st:{early}:delivered")
    assert event.processed_at is None and event.attempts == 1
    ours = _outbound(channels["whatsapp"], early)  # the send is recorded now
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    drain_in(tenant_a)
    ours.refresh_from_db()
    assert ours.status == MessageStatus.DELIVERED
    assert WebhookEvent.objects.get(pk=event.pk).outcome == "applied"


def test_user_preferences_opt_out_of_marketing_only(tenant_a: Tenant, channels: dict[str, int]) -> None:
    value = meta_messages_value()
    value["user_preferences"] = [fixture("user_preferences.json")]
    post_meta(meta_envelope(value, field="user_preferences"))
    drain_in(tenant_a)
    contact = Contact.objects.get(phone="+5511977776666")
    consent = ContactConsent.objects.get(contact=contact, medium="whatsapp")
    assert consent.status == ConsentStatus.MARKETING_OPTED_OUT
    assert consent.source == "whatsapp:user_preferences:stop"


def test_unknown_webhook_fields_are_stored_not_errors(channels: dict[str, int]) -> None:
    response = post_meta(meta_envelope({"some": "thing"}, field="account_update"))
    assert response.status_code == 200
    assert WebhookEvent.objects.filter(event_id__startswith="other:account_update:").exists()


def test_events_for_unknown_numbers_are_kept_and_marked(tenant_a: Tenant, settings: Any) -> None:
    message_id = wamid()
    post_meta(meta_envelope(meta_messages_value(messages=[inbound("text", message_id)], pnid="100000000000999")))
    drain_in(tenant_a)
    event = WebhookEvent.objects.get(event_id=f"msg:{message_id}")
    assert event.processed_at is not None and event.outcome.startswith("no route")


def test_a_drain_applies_many_statuses_in_bulk_as_one_by_one_would(
    tenant_a: Tenant, channels: dict[str, int], django_assert_max_num_queries: Any
) -> None:
    connection.set_tenant(tenant_a)
    ours = [_outbound(channels["whatsapp"], wamid()) for _ in range(30)]
    failed = _outbound(channels["whatsapp"], wamid())
    steps = [(m, s) for m in ours for s in ("sent", "delivered", "read")]
    steps = steps[1::2] + steps[::2]  # out of order, interleaved across messages
    for message, step in steps:
        store_meta(meta_envelope(meta_messages_value(statuses=[status(step, message.provider_message_id)])))
    store_meta(meta_envelope(meta_messages_value(statuses=[status("failed", failed.provider_message_id)])))
    with django_assert_max_num_queries(40):  # not a few per event: 91 events, bulk reads and one write
        drain_in(tenant_a)
    for message in ours:
        message.refresh_from_db()
        assert message.status == MessageStatus.READ and message.read_at and message.delivered_at and message.sent_at
    failed.refresh_from_db()
    assert failed.status == MessageStatus.FAILED and failed.error_code == "131026" and failed.failed_at
    ids = [f"st:{m.provider_message_id}:{s}" for m, s in steps]
    assert set(WebhookEvent.objects.filter(event_id__in=ids).values_list("outcome", flat=True)) <= {
        "applied",
        "no change",
    }
    assert not WebhookEvent.objects.filter(event_id__in=ids, processed_at=None).exists()


def test_a_quality_drop_raises_the_channel_alert_and_unflagging_clears_it(
    tenant_a: Tenant, channels: dict[str, int], django_capture_on_commit_callbacks: Any
) -> None:
    from alerts.models import Alert
    from tests.messaging import fixture, store_meta
    from whatsapp.webhooks import split_events

    flagged = fixture("phone_number_quality_update__flagged.json")
    (raw,) = split_events(flagged)
    assert (raw.route_kind, raw.route_key, raw.payload["kind"]) == ("whatsapp_waba", "200000000000001", "quality")
    for step, name in enumerate(("flagged", "flagged", "unflagged")):  # Meta redelivers: stored once, one alert
        body = fixture(f"phone_number_quality_update__{name}.json")
        if step == 1:
            assert store_meta(body) == 0  # the redelivery (on the test's connection: its drain holds the row)
        else:
            post_meta(body)
        with django_capture_on_commit_callbacks(execute=True):
            drain_batch()
        connection.set_tenant(tenant_a)
        (alert,) = Alert.objects.filter(kind="channel.quality_dropped", key=str(channels["whatsapp"]))
        if name == "flagged":
            assert alert.is_open and alert.count == 1
            assert alert.detail == {
                "channel_id": channels["whatsapp"],
                "number": "+5511911110000",
                "event": "FLAGGED",
                "limit": "TIER_1K",
            }
        connection.set_schema_to_public()
    assert alert.resolution == "cleared"
