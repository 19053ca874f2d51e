"""The settings page's test report through the real worker: the WhatsApp copy leaves through the channel
to the Meta emulator and stays in the inbox conversation with that number."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from emulators.meta import MetaEmulator
from inbox.models import Message
from reports.models import Medium, ReportRun, ReportSettings, RunStatus
from reports.tasks import report_test_send
from tests.conftest import WA_WABA
from tests.messaging import open_conversation
from tests.support import wait_until
from tests.test_beat_tasks import beat_send
from whatsapp.models import MessageTemplate


@pytest.mark.parametrize("window", ["open", "closed"])
def test_a_test_report_goes_out_on_whatsapp_through_the_emulator(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
    window: str,
) -> None:
    """In the window the text goes out; outside it, the approved template chosen in the settings."""
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    open_conversation(channels["whatsapp"], phone, window_open=window == "open")
    template = MessageTemplate.objects.create(
        waba_id=WA_WABA,
        template_id=uuid.uuid4().hex,
        name=f"report_e2e_{uuid.uuid4().hex[:6]}",
        language="pt_BR",
        category="UTILITY",
        status="APPROVED",
        components=[{"type": "BODY", "text": "{{1}}. {{2}}"}],
    )
    ReportSettings.objects.update_or_create(
        pk=1,
        defaults={
            "frequency": "daily",
            "email_enabled": False,
            "whatsapp_number": phone,
            "whatsapp_channel_id": channels["whatsapp"],
            "whatsapp_template": template,
        },
    )
    try:
        report_test_send.delay()

        def sent() -> ReportRun | None:
            connection.set_tenant(alpha)
            run = ReportRun.objects.filter(is_test=True, medium=Medium.WHATSAPP, detail=phone).first()
            if run is None or run.message_id is None:
                return None
            message = Message.objects.get(pk=run.message_id)
            return run if message.provider_message_id in meta_emulator.sent else None

        run = wait_until(sent, timeout=30, what="the report's WhatsApp copy at the Graph emulator")
        assert run.status == RunStatus.SENT
        message = Message.objects.get(pk=run.message_id)
        wire = meta_emulator.sent[message.provider_message_id]
        assert wire["to"] == phone.lstrip("+") and message.conversation.contact.phone == phone
        if window == "open":
            assert wire["type"] == "text" and "Mensagens recebidas:" in message.body
        else:
            assert wire["type"] == "template" and wire["template"]["name"] == template.name
            (body,) = [c for c in wire["template"]["components"] if c["type"] == "body"]
            heading, numbers = (p["text"] for p in body["parameters"])
            assert heading.startswith("Relatório diário de") and "mensagens recebidas" in numbers
    finally:
        connection.set_tenant(alpha)
        ReportSettings.objects.filter(pk=1).delete()
        template.delete()


def test_beat_ticks_send_the_scheduled_report_once(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    """Two beat ticks (as beat sends them: by name, no tenant header) make one scheduled WhatsApp report."""
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    open_conversation(channels["whatsapp"], phone)
    ReportSettings.objects.update_or_create(
        pk=1,
        defaults={
            "frequency": "daily",
            "hour": 0,  # due from midnight: any time today
            "email_enabled": False,
            "whatsapp_number": phone,
            "whatsapp_channel_id": channels["whatsapp"],
        },
    )
    started = timezone.now()
    ReportRun.objects.filter(is_test=False).delete()
    try:
        assert beat_send("reports.tick").get(timeout=60) >= 1
        assert beat_send("reports.tick").get(timeout=60) == 0
        connection.set_tenant(alpha)
        runs = list(ReportRun.objects.filter(is_test=False, created_at__gte=started))
        assert [(r.medium, r.status, r.detail) for r in runs] == [(Medium.WHATSAPP, RunStatus.SENT, phone)]
        message = Message.objects.get(pk=runs[0].message_id)

        def at_emulator() -> bool:
            connection.set_tenant(alpha)
            message.refresh_from_db()
            return bool(message.provider_message_id) and message.provider_message_id in meta_emulator.sent

        wait_until(at_emulator, timeout=30, what="the scheduled report at the Graph emulator")
        assert Message.objects.filter(conversation__contact__phone=phone, direction="out").count() == 1
    finally:
        connection.set_tenant(alpha)
        ReportSettings.objects.filter(pk=1).delete()
        ReportRun.objects.filter(is_test=False).delete()
