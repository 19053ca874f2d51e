"""Coexistence: the number is also used in the WhatsApp Business app on the business's phone. Meta's
smb_message_echoes, history (phases, chunks, decline) and smb_app_state_sync webhooks, built by the Meta
emulator, signed, posted to the real intake and applied by the ingest drain."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.services import api_token_create
from campaigns.models import Enrollment, EnrollmentStatus
from campaigns.services import cadence_enroll, cadence_save
from core import events
from crm.models import ConsentStatus, Contact, ContactConsent
from crm.services import contact_erase, contact_get_or_create
from emulators.meta import MetaEmulator
from inbox.ingest import drain_batch
from inbox.models import (
    BusinessAppContact,
    Channel,
    Conversation,
    Direction,
    HistoryImport,
    HistoryImportStatus,
    Message,
    MessageOrigin,
    MessageStatus,
)
from inbox.providers import BusinessAppMessage, HistoryDeclined, HistoryProgress
from inbox.services import message_dispatch, message_send, window_open
from intake.models import WebhookEvent
from tenants.models import Tenant
from tests.conftest import WA_PNID, WA_WABA, tenant_client
from tests.messaging import fixture, inbound, meta_envelope, meta_messages_value, post_meta, status, store_meta
from whatsapp.providers import CloudProvider
from whatsapp.webhooks import split_events

pytestmark = pytest.mark.django_db

WATCHED = (
    events.MESSAGE_CREATED,
    events.MESSAGE_STATUS,
    events.CONVERSATION_UPDATED,
    events.CONTACT_OPTED_OUT,
    events.CONTACT_OPTED_IN,
    events.MESSAGE_FROM_BUSINESS_APP,
)


@pytest.fixture
def announced() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every event the bus delivers during the test, as its subscribers (bots, rules, cadence exits,
    live pushes) would get it."""
    seen: list[tuple[str, dict[str, Any]]] = []
    handlers = {}
    for name in WATCHED:

        def handler(schema: str, payload: dict[str, Any], name: str = name) -> None:
            seen.append((name, payload))

        handlers[name] = handler
        events.subscribe(name, handler)
    yield seen
    for name, handler in handlers.items():
        events._subscribers[name].remove(handler)


@pytest.fixture
def wa(tenant_a: Tenant, channels: dict[str, int]) -> Iterator[Channel]:
    """Alpha's Cloud API channel, with no history import yet (an end-to-end test may have left one)."""
    connection.set_tenant(tenant_a)
    HistoryImport.objects.filter(channel_id=channels["whatsapp"]).delete()
    yield Channel.objects.get(pk=channels["whatsapp"])
    connection.set_schema_to_public()


def phone() -> str:
    return f"+55119{random.randrange(10**8):08d}"


def drain(tenant: Tenant, capture: Any) -> None:
    """The ingest drain, with the bus's after-commit deliveries run as a commit would run them."""
    with capture(execute=True):
        drain_batch()
    connection.set_tenant(tenant)


def post(field: str, value: dict[str, Any]) -> None:
    assert post_meta(meta_envelope(value, field=field, entry_id=WA_WABA)).status_code == 200


def _cadence_on(channel: Channel, contact: Contact) -> Enrollment:
    cadence = cadence_save(
        name=f"Para na resposta {uuid.uuid4().hex[:6]}",
        channel=channel,
        respect_quiet_hours=False,
        stop_on_reply=True,
        steps=[{"delay_minutes": 1440, "kind": "text", "body": "Ainda tem interesse?"}],
    )
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
    return Enrollment.objects.get(cadence=cadence, contact=contact)


# --- Meta's payloads, as documented ---------------------------------------------------------------


def test_meta_documented_payloads_split_and_parse_field_by_field() -> None:
    """Meta's reference shapes (tests/whatsapp/fixtures/coexistence.json): stable ids per item, every
    field read, BSUIDs kept when present."""
    docs = fixture("coexistence.json")

    def parsed(field: str, key: str) -> list[tuple[str, list[Any]]]:
        raw = split_events(meta_envelope(docs[key], field=field, entry_id="102290129340398"))
        assert {(e.route_kind, e.route_key) for e in raw} == {("whatsapp_cloud", "106540352242922")}
        return [(e.event_id, CloudProvider.parse_event(e.payload)) for e in raw]

    [(echo_id, [echo])] = parsed("smb_message_echoes", "smb_message_echoes")
    assert echo_id == "echo:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
    assert isinstance(echo, BusinessAppMessage)
    assert (echo.direction, echo.customer_phone, echo.customer_user_id, echo.history) == (
        "out",
        "16505551234",
        "US.13491208655302741918",
        False,
    )
    assert echo.body.startswith("Here's the info") and echo.timestamp.timestamp() == 1739321024

    history = parsed("history", "history")
    assert history[0][0].startswith("histchunk:106540352242922:0:1:55:")
    assert history[0][1] == [HistoryProgress(phase=0, chunk_order=1, progress=55)]
    messages = [event for _id, (event,) in history[1:]]
    assert all(isinstance(m, BusinessAppMessage) and m.history for m in messages)
    assert [(m.direction, m.customer_phone, m.type, m.history_status) for m in messages] == [  # type: ignore[union-attr]
        ("in", "16505551234", "text", "read"),  # the business read it (an inbound row stays "received")
        ("out", "16505551234", "text", "read"),  # PLAYED: as far as a message goes
        ("in", "16505551234", "unsupported", "delivered"),  # a media placeholder, completed by a later copy
    ]
    assert all(event_id.startswith("hist:wamid.") for event_id, _events in history[1:])

    [(declined_id, [declined])] = parsed("history", "history_declined")
    assert declined_id == "histerr:106540352242922:2593109"
    assert declined == HistoryDeclined(
        code="2593109",
        title="History sharing is turned off by the business",
        details="History sharing is turned off by the business",
    )

    sync = parsed("smb_app_state_sync", "smb_app_state_sync")
    changes = [event for _id, (event,) in sync]
    assert [(c.action, c.phone, c.full_name, c.first_name) for c in changes] == [  # type: ignore[union-attr]
        ("add", "16505551234", "Pablo Morales", "Pablo"),
        ("remove", "16505551235", "", ""),
    ]
    assert len({event_id for event_id, _events in sync}) == 2


# --- echoes ----------------------------------------------------------------------------------------


def test_an_echo_shows_as_sent_from_the_phone_and_is_never_sent_nor_reacted_to(
    tenant_a: Tenant,
    wa: Channel,
    owner_a: User,
    meta_emulator: MetaEmulator,
    announced: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    customer = phone()
    post("messages", meta_messages_value(messages=[inbound("text", f"wamid.{uuid.uuid4().hex}", customer[1:])]))
    drain(tenant_a, django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get(contact__phone=customer, channel=wa)
    assert conversation.unread_count == 1
    enrollment = _cadence_on(wa, conversation.contact)
    announced.clear()
    sends_before = meta_emulator.snapshot()["sent"]

    wamid, value = meta_emulator.echo_value(phone_number_id=WA_PNID, to_phone=customer, text="Já separei seu pedido!")
    post("smb_message_echoes", value)
    drain(tenant_a, django_capture_on_commit_callbacks)

    echo = Message.objects.get(provider_message_id=wamid)
    assert (echo.direction, echo.origin, echo.status, echo.body) == (
        Direction.OUTBOUND,
        MessageOrigin.BUSINESS_APP,
        MessageStatus.SENT,
        "Já separei seu pedido!",
    )
    assert echo.conversation_id == conversation.pk and echo.sent_at is not None
    before = (conversation.unread_count, conversation.last_inbound_at)
    conversation.refresh_from_db()
    assert (conversation.unread_count, conversation.last_inbound_at) == before  # no unread bump, window untouched
    assert conversation.last_message_at == echo.created_at  # the newest message, live
    # Shown live in the inbox, but nothing that reacts to message.created (bots, rules, cadences) hears of it.
    assert [name for name, _payload in announced] == [events.MESSAGE_FROM_BUSINESS_APP]
    assert announced[0][1]["origin"] == MessageOrigin.BUSINESS_APP
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ACTIVE

    # Never sent by us: the dispatcher refuses it, and Meta received nothing.
    assert message_dispatch(message_id=echo.pk) is None
    assert meta_emulator.snapshot()["sent"] == sends_before
    assert customer.lstrip("+") not in meta_emulator.snapshot()["sent_to"]
    echo.refresh_from_db()
    assert echo.status == MessageStatus.SENT and echo.attempts == 0

    # A redelivery is a no-op; Meta's statuses for it move it forward as for any message.
    assert store_meta(meta_envelope(value, field="smb_message_echoes", entry_id=WA_WABA)) == 0
    post("messages", meta_messages_value(statuses=[status("delivered", wamid, customer[1:])]))
    drain(tenant_a, django_capture_on_commit_callbacks)
    assert Message.objects.filter(provider_message_id=wamid).count() == 1
    echo.refresh_from_db()
    assert echo.status == MessageStatus.DELIVERED

    page = tenant_client(tenant_a, owner_a, lang="en").get(f"/conversations/{conversation.pk}/")
    assert page.status_code == 200
    assert f'id="msg-{echo.pk}" data-status="delivered" data-origin="business_app"' in page.content.decode()
    assert "Sent from the phone" in page.content.decode()
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="coexistence")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    listed = api.get(f"/api/v1/conversations/{conversation.pk}/messages/").json()["results"]
    assert [(m["direction"], m["origin"]) for m in listed][-1] == ("out", "business_app")


def test_an_echo_to_someone_new_makes_the_contact_and_a_conversation_without_unread(
    tenant_a: Tenant, wa: Channel, meta_emulator: MetaEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    customer = phone()
    wamid, value = meta_emulator.echo_value(
        phone_number_id=WA_PNID, to_phone=customer, text="Olá! Aqui é da loja.", to_user_id="BR.1502576394655843"
    )
    post("smb_message_echoes", value)
    drain(tenant_a, django_capture_on_commit_callbacks)
    echo = Message.objects.select_related("conversation__contact").get(provider_message_id=wamid)
    assert echo.conversation.contact.phone == customer
    assert echo.conversation.unread_count == 0 and echo.conversation.last_inbound_at is None
    assert not window_open(echo.conversation)  # the business writing first opens no customer-service window


# --- history -------------------------------------------------------------------------------------


def _ids_in_list_order() -> list[int]:
    return list(Conversation.objects.order_by("-last_message_at", "-id").values_list("pk", flat=True))


def test_history_in_phases_and_chunks_delivered_twice_imports_once_without_reordering_or_side_effects(
    tenant_a: Tenant,
    wa: Channel,
    owner_a: User,
    meta_emulator: MetaEmulator,
    announced: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    live, old = phone(), phone()
    post("messages", meta_messages_value(messages=[inbound("text", f"wamid.{uuid.uuid4().hex}", live[1:])]))
    drain(tenant_a, django_capture_on_commit_callbacks)
    live_conversation = Conversation.objects.get(contact__phone=live, channel=wa)
    live_before = (live_conversation.last_message_at, live_conversation.last_inbound_at, live_conversation.unread_count)
    enrollment = _cadence_on(wa, live_conversation.contact)
    order_before = _ids_in_list_order()
    announced.clear()

    day = 86400
    threads = [
        {
            "customer": live,
            "messages": [
                {"text": "Vocês abrem sábado?", "age_s": 100 * day},
                {"text": "Abrimos sim, das 9h às 13h", "age_s": 100 * day - 600, "from_business": True},
                {"text": "Quero encomendar um bolo", "age_s": 2 * day},
            ],
        },
        {
            "customer": old,
            "messages": [
                {"text": "Oi, tem pão de queijo?", "age_s": 40 * day},
                {"text": "Temos! Quantos?", "age_s": 40 * day - 300, "from_business": True, "status": "READ"},
                {"text": "PARAR", "age_s": 5 * 3600},  # a STOP in old chats changes no consent today
                {"text": "Combinado", "age_s": 4 * 3600, "from_business": True, "status": "DELIVERED"},
            ],
        },
    ]
    values = meta_emulator.history_values(phone_number_id=WA_PNID, threads=threads, chunk_size=2)
    phases = {v["history"][0]["metadata"]["phase"] for v in values}
    assert phases == {0, 1, 2} and len(values) >= 4  # several phases, several chunks
    bodies = [meta_envelope(v, field="history", entry_id=WA_WABA) for v in values]
    for body in [*reversed(bodies), *bodies]:  # out of order, and every chunk twice
        assert post_meta(body).status_code == 200
    drain(tenant_a, django_capture_on_commit_callbacks)
    assert sum(store_meta(body) for body in bodies) == 0  # redelivered after they were applied: nothing new

    imported = Message.objects.filter(
        channel=wa, origin=MessageOrigin.HISTORY, conversation__contact__phone__in=[live, old]
    )
    assert imported.count() == 7
    sent = [m for v in values for t in v["history"][0]["threads"] for m in t["messages"]]
    assert sorted(str(i) for i in imported.values_list("provider_message_id", flat=True)) == sorted(
        m["id"] for m in sent
    )

    old_conversation = Conversation.objects.get(contact__phone=old, channel=wa)
    timeline = list(old_conversation.messages.order_by("created_at", "id"))
    assert [(m.direction, m.body) for m in timeline] == [
        (Direction.INBOUND, "Oi, tem pão de queijo?"),
        (Direction.OUTBOUND, "Temos! Quantos?"),
        (Direction.INBOUND, "PARAR"),
        (Direction.OUTBOUND, "Combinado"),
    ]
    assert [m.status for m in timeline] == [
        MessageStatus.RECEIVED,
        MessageStatus.READ,
        MessageStatus.RECEIVED,
        MessageStatus.DELIVERED,
    ]
    newest = max(int(m["timestamp"]) for m in sent if m["from"] == old[1:] or m.get("to") == old[1:])
    assert old_conversation.last_message_at.timestamp() == newest  # its own time, not the import's
    assert old_conversation.unread_count == 0

    # The live conversation keeps its place and counts; the imported one sits below it, by its own time.
    live_conversation.refresh_from_db()
    assert (
        live_conversation.last_message_at,
        live_conversation.last_inbound_at,
        live_conversation.unread_count,
    ) == live_before
    order_after = _ids_in_list_order()
    assert [pk for pk in order_after if pk in order_before] == order_before
    assert order_after.index(live_conversation.pk) < order_after.index(old_conversation.pk)
    assert live_conversation.messages.filter(origin=MessageOrigin.HISTORY).count() == 3

    # Nobody notified, nothing pushed, no cadence stopped, no consent changed, nothing sent.
    assert announced == []
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ACTIVE
    assert not ContactConsent.objects.filter(contact__phone=old).exclude(status=ConsentStatus.OPTED_IN).exists()
    assert not Message.objects.filter(channel=wa, origin=MessageOrigin.HISTORY, status=MessageStatus.QUEUED).exists()

    progress = HistoryImport.objects.get(channel=wa)
    assert (progress.status, progress.progress, progress.phase) == (HistoryImportStatus.COMPLETE, 100, 2)
    assert progress.chunks == len(values)  # each chunk counted once, whatever the deliveries
    page = tenant_client(tenant_a, owner_a, lang="en").get("/channels/").content.decode()
    assert 'data-history-status="complete" data-history-progress="100" data-history-phase="2"' in page
    assert f"{Message.objects.filter(channel=wa, origin=MessageOrigin.HISTORY).count()} messages" in page


def test_a_history_webhook_with_thousands_of_messages_is_stored_whole(tenant_a: Tenant) -> None:
    """Past one statement's parameter limit (65535, five a row): stored in batches, every message once.
    The intake's INSERT on the test's own connection (store_meta), so nothing outlives the test."""
    customer, now = "5511987650099", int(time.time())
    messages = [
        {"from": customer, "id": f"wamid.bulk.{uuid.uuid4().hex[:8]}.{i}", "timestamp": str(now - 86400 - i)}
        | {"type": "text", "text": {"body": "x"}}
        for i in range(14000)
    ]
    history = {
        "metadata": {"phase": 1, "chunk_order": 1, "progress": 40},
        "threads": [{"id": customer, "messages": messages}],
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": "pnid-bulk-unrouted"},
        "history": [history],
    }
    body = meta_envelope(value, field="history", entry_id=WA_WABA)
    connection.set_schema_to_public()
    assert store_meta(body) == 14001  # the chunk's progress and its 14000 messages
    assert store_meta(body) == 0
    ids = [f"hist:{m['id']}:" for m in messages[::1000]]
    assert all(WebhookEvent.objects.filter(event_id__startswith=prefix).count() == 1 for prefix in ids)


def test_history_progress_never_goes_back_and_a_media_copy_completes_its_message(
    tenant_a: Tenant, wa: Channel, meta_emulator: MetaEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    customer = phone()
    values = meta_emulator.history_values(
        phone_number_id=WA_PNID,
        threads=[{"customer": customer, "messages": [{"text": "a", "age_s": 3600}, {"text": "b", "age_s": 3000}]}],
        chunk_size=1,
    )
    assert [v["history"][0]["metadata"]["progress"] for v in values] == [25, 50, 75, 100]
    post("history", values[1])  # phase 0, chunk 2 first
    post("history", values[0])  # then chunk 1
    drain(tenant_a, django_capture_on_commit_callbacks)
    row = HistoryImport.objects.get(channel=wa)
    assert (row.phase, row.chunk_order, row.progress, row.status) == (0, 2, 50, HistoryImportStatus.IMPORTING)
    assert list(
        Message.objects.filter(conversation__contact__phone=customer)
        .order_by("created_at")
        .values_list("body", flat=True)
    ) == ["a", "b"]

    # Meta sends media messages first without their media id, then again with it.
    wamid = f"wamid.{uuid.uuid4().hex}"
    media = {"from": customer[1:], "id": wamid, "timestamp": str(int(time.time()) - 7200), "type": "image"}
    for content in ({}, {"id": "1234567890", "mime_type": "image/jpeg", "caption": "foto"}):
        history: dict[str, Any] = {"metadata": {"phase": 0, "chunk_order": 9, "progress": 90}}
        history["threads"] = [{"id": customer[1:], "messages": [{**media, "image": content}]}]
        post(
            "history", {"messaging_product": "whatsapp", "metadata": {"phone_number_id": WA_PNID}, "history": [history]}
        )
        drain(tenant_a, django_capture_on_commit_callbacks)
    message = Message.objects.get(provider_message_id=wamid)
    assert (message.type, message.provider_media_id, message.direction) == ("image", "1234567890", Direction.INBOUND)


def test_a_history_message_without_its_time_is_refused_not_dated_now(
    tenant_a: Tenant, wa: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    wamid = f"wamid.{uuid.uuid4().hex}"
    thread = {
        "id": "5511987650000",
        "messages": [{"from": "5511987650000", "id": wamid, "type": "text", "text": {"body": "x"}}],
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": WA_PNID},
        "history": [{"threads": [thread]}],
    }
    post("history", value)
    drain(tenant_a, django_capture_on_commit_callbacks)
    assert not Message.objects.filter(provider_message_id=wamid).exists()
    connection.set_schema_to_public()
    assert WebhookEvent.objects.get(event_id__startswith=f"hist:{wamid}:").outcome.startswith("bad payload")


def test_a_business_that_declines_to_share_history_is_recorded_and_shown(
    tenant_a: Tenant, wa: Channel, owner_a: User, meta_emulator: MetaEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    value = meta_emulator.history_declined_value(phone_number_id=WA_PNID)
    post("history", value)
    drain(tenant_a, django_capture_on_commit_callbacks)
    row = HistoryImport.objects.get(channel=wa)
    assert (row.status, row.error_code) == (HistoryImportStatus.DECLINED, "2593109")
    assert row.error_text == "History sharing is turned off by the business" and row.declined_at is not None
    assert store_meta(meta_envelope(value, field="history", entry_id=WA_WABA)) == 0
    page = tenant_client(tenant_a, owner_a, lang="en").get("/channels/").content.decode()
    assert 'data-history-status="declined"' in page and "Chat history not shared" in page
    assert (
        "Histórico de conversas não compartilhado"
        in tenant_client(tenant_a, owner_a).get("/channels/").content.decode()
    )


def test_a_timeline_with_history_imported_after_live_messages_pages_in_time_order(
    tenant_a: Tenant, wa: Channel, meta_emulator: MetaEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    from inbox.selectors import conversation_messages

    customer = phone()
    for _ in range(3):
        post("messages", meta_messages_value(messages=[inbound("text", f"wamid.{uuid.uuid4().hex}", customer[1:])]))
    drain(tenant_a, django_capture_on_commit_callbacks)
    old = [{"text": f"antiga {i}", "age_s": 10 * 86400 - i * 60} for i in range(12)]
    for value in meta_emulator.history_values(
        phone_number_id=WA_PNID, threads=[{"customer": customer, "messages": old}], chunk_size=5
    ):
        post("history", value)
    drain(tenant_a, django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get(contact__phone=customer, channel=wa)
    seen: list[Message] = []
    before = None
    while True:
        page, more = conversation_messages(conversation=conversation, before=before, limit=4)
        seen = page + seen
        if not more:
            break
        before = page[0].pk
    assert [m.body for m in seen[:12]] == [f"antiga {i}" for i in range(12)]
    assert len(seen) == 15 and len({m.pk for m in seen}) == 15
    assert [m.created_at for m in seen] == sorted(m.created_at for m in seen)


# --- the app's address book ----------------------------------------------------------------------


def test_app_contacts_are_added_updated_and_removed_without_losing_crm_data(
    tenant_a: Tenant, wa: Channel, owner_a: User, meta_emulator: MetaEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    pablo, vip, stranger = phone(), phone(), phone()
    contact_get_or_create(phone=vip, name="Cliente VIP")  # a name the team typed
    t0 = int(time.time()) - 600

    def sync(*contacts: dict[str, Any]) -> None:
        post("smb_app_state_sync", meta_emulator.state_sync_value(phone_number_id=WA_PNID, contacts=list(contacts)))
        drain(tenant_a, django_capture_on_commit_callbacks)

    sync(
        {"phone": pablo, "full_name": "Pablo Morales", "first_name": "Pablo", "timestamp": t0},
        {"phone": vip, "full_name": "Vip do Zap", "first_name": "Vip", "timestamp": t0},
    )
    assert Contact.objects.get(phone=pablo).name == "Pablo Morales"
    assert Contact.objects.get(phone=vip).name == "Cliente VIP"  # kept
    assert BusinessAppContact.objects.get(channel=wa, phone=vip).full_name == "Vip do Zap"

    sync({"phone": pablo, "full_name": "Pablo M. Souza", "first_name": "Pablo", "timestamp": t0 + 60})  # edited
    sync({"phone": pablo, "full_name": "Pablo Velho", "first_name": "Pablo", "timestamp": t0 + 30})  # late, older
    assert Contact.objects.get(phone=pablo).name == "Pablo M. Souza"

    conversation = Conversation.objects.create(contact=Contact.objects.get(phone=pablo), channel=wa)
    sync({"phone": pablo, "action": "remove", "timestamp": t0 + 120}, {"phone": stranger, "action": "remove"})
    contact = Contact.objects.get(phone=pablo)
    assert contact.name == "Pablo M. Souza" and Conversation.objects.filter(pk=conversation.pk).exists()
    entry = BusinessAppContact.objects.get(channel=wa, phone=pablo)
    assert entry.removed_at is not None and entry.contact_id == contact.pk
    assert not Contact.objects.filter(phone=stranger).exists()  # a removal makes no contact
    assert BusinessAppContact.objects.get(channel=wa, phone=stranger).removed_at is not None

    page = tenant_client(tenant_a, owner_a, lang="en").get("/channels/").content.decode()
    assert "1 contact in the app's address book" in page and "2 removed there (kept here)" in page

    sync({"phone": pablo, "full_name": "Pablo M. Souza", "first_name": "Pablo", "timestamp": t0 + 180})  # added back
    assert BusinessAppContact.objects.get(channel=wa, phone=pablo).removed_at is None

    with django_capture_on_commit_callbacks(execute=True):  # LGPD: the app's entry goes with the person's data
        contact_erase(contact=contact)
    assert not BusinessAppContact.objects.filter(contact_id=contact.pk).exists()


# --- the 24-hour window ------------------------------------------------------------------------------


def test_the_24_hour_window_runs_from_the_customers_last_message_in_either_app(
    tenant_a: Tenant, wa: Channel, meta_emulator: MetaEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    recent, stale, live = phone(), phone(), phone()
    threads = [
        {"customer": recent, "messages": [{"text": "Oi, ainda dá tempo?", "age_s": 3 * 3600}]},
        {"customer": stale, "messages": [{"text": "Oi", "age_s": 30 * 3600}]},
        {"customer": live, "messages": [{"text": "mensagem antiga", "age_s": 20 * 3600}]},
    ]
    post("messages", meta_messages_value(messages=[inbound("text", f"wamid.{uuid.uuid4().hex}", live[1:])]))
    drain(tenant_a, django_capture_on_commit_callbacks)
    live_inbound = Conversation.objects.get(contact__phone=live, channel=wa).last_inbound_at
    for value in meta_emulator.history_values(phone_number_id=WA_PNID, threads=threads, chunk_size=5):
        post("history", value)
    # The owner answered the stale one from the phone an hour ago: that opens nothing.
    post("smb_message_echoes", meta_emulator.echo_value(phone_number_id=WA_PNID, to_phone=stale, text="Oi!")[1])
    drain(tenant_a, django_capture_on_commit_callbacks)

    open_one = Conversation.objects.get(contact__phone=recent, channel=wa)
    assert window_open(open_one)
    assert message_send(conversation=open_one, body="Dá sim!").status == MessageStatus.QUEUED
    closed = Conversation.objects.get(contact__phone=stale, channel=wa)
    assert not window_open(closed)
    with pytest.raises(ValidationError) as refused:
        message_send(conversation=closed, body="Oi de novo")
    assert refused.value.code == "window_closed"
    # An older message from the app never moves the window's start back.
    assert Conversation.objects.get(contact__phone=live, channel=wa).last_inbound_at == live_inbound
    assert timezone.now() - live_inbound < timedelta(minutes=5)
