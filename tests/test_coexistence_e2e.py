"""Coexistence end to end: the Meta emulator plays a number that is also used in the WhatsApp Business app
and calls the app (uvicorn) with signed echo and history webhooks; the real Celery worker applies them."""

from __future__ import annotations

import random
import time
from typing import Any

from django.db import connection

from emulators.meta import MetaEmulator
from inbox.models import Conversation, Direction, HistoryImport, HistoryImportStatus, Message, MessageOrigin
from tenants.models import Tenant
from tests.conftest import WA_PNID
from tests.support import wait_until


def _phone() -> str:
    return f"+55119{random.randrange(10**8):08d}"


def test_an_echo_from_the_phone_arrives_as_outbound_and_is_never_sent(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: tuple[Tenant, Tenant],
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    customer = _phone()
    meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=customer, text="Tem horário hoje?")

    def conversation() -> Conversation | None:
        connection.set_tenant(alpha)
        return Conversation.objects.filter(contact__phone=customer, channel_id=channels["whatsapp"]).first()

    wait_until(lambda: conversation() is not None, timeout=30)
    wamid = meta_emulator.inject_echo(phone_number_id=WA_PNID, to_phone=customer, text="Tem sim, às 15h")

    def echo() -> Message | None:
        connection.set_tenant(alpha)
        return Message.objects.filter(provider_message_id=wamid).first()

    wait_until(lambda: echo() is not None, timeout=30)
    found = echo()
    assert found is not None
    assert (found.direction, found.origin, found.body) == (
        Direction.OUTBOUND,
        MessageOrigin.BUSINESS_APP,
        "Tem sim, às 15h",
    )
    time.sleep(1.0)  # a send, had one been queued, would have reached the emulator by now
    assert customer.lstrip("+") not in meta_emulator.snapshot()["sent_to"]
    current = conversation()
    assert current is not None and current.unread_count == 1  # the customer's message only


def test_history_in_phases_delivered_twice_is_imported_once_by_the_worker(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: tuple[Tenant, Tenant],
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    HistoryImport.objects.filter(channel_id=channels["whatsapp"]).delete()
    first, second = _phone(), _phone()
    day = 86400
    threads = [
        {
            "customer": first,
            "messages": [
                {"text": "Oi, vocês entregam?", "age_s": 45 * day},
                {"text": "Entregamos sim", "age_s": 45 * day - 60, "from_business": True},
            ],
        },
        {"customer": second, "messages": [{"text": "Obrigada!", "age_s": 6 * 3600}]},
    ]
    chunks = meta_emulator.inject_history(phone_number_id=WA_PNID, threads=threads, chunk_size=1, deliveries=2)

    def done() -> bool:
        connection.set_tenant(alpha)
        row = HistoryImport.objects.filter(channel_id=channels["whatsapp"]).first()
        imported = Message.objects.filter(
            origin=MessageOrigin.HISTORY, conversation__contact__phone__in=[first, second]
        ).count()
        return row is not None and row.progress == 100 and row.chunks == chunks and imported == 3

    try:
        wait_until(done, timeout=45)
        time.sleep(0.5)  # the second delivery of every chunk has had its chance to double something
        connection.set_tenant(alpha)
        row = HistoryImport.objects.get(channel_id=channels["whatsapp"])
        assert (row.status, row.chunks) == (HistoryImportStatus.COMPLETE, chunks)
        assert (
            Message.objects.filter(
                origin=MessageOrigin.HISTORY, conversation__contact__phone__in=[first, second]
            ).count()
            == 3
        )
        for customer in (first, second):
            conversation = Conversation.objects.get(contact__phone=customer, channel_id=channels["whatsapp"])
            newest = conversation.messages.order_by("-created_at").first()
            assert newest is not None and conversation.last_message_at == newest.created_at
            assert conversation.unread_count == 0
    finally:
        connection.set_tenant(alpha)
        HistoryImport.objects.filter(channel_id=channels["whatsapp"]).delete()


def test_the_emulator_control_endpoint_plays_a_business_that_declines_history(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: tuple[Tenant, Tenant],
    channels: dict[str, int],
    committed: Any,
) -> None:
    """What the demo uses: POST /_emulator/history_declined (and /echo, /history, /state_sync)."""
    import httpx

    alpha = tenants[0]
    connection.set_tenant(alpha)
    HistoryImport.objects.filter(channel_id=channels["whatsapp"]).delete()
    answer = httpx.post(f"{meta_emulator.base_url}/_emulator/history_declined", json={"phone_number_id": WA_PNID})
    assert answer.status_code == 200

    def declined() -> bool:
        connection.set_tenant(alpha)
        row = HistoryImport.objects.filter(channel_id=channels["whatsapp"]).first()
        return row is not None and row.status == HistoryImportStatus.DECLINED and row.error_code == "2593109"

    try:
        wait_until(declined, timeout=30)
    finally:
        connection.set_tenant(alpha)
        HistoryImport.objects.filter(channel_id=channels["whatsapp"]).delete()
