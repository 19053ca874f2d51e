from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from ai.models import AISettings, Assistant
from ai.services import assistant_save
from inbox.models import Channel, Conversation, Message
from inbox.providers import InboundMessage
from inbox.services import inbound_apply
from tests.conftest import OPENAI_KEY


def phone() -> str:
    return f"+55119{uuid.uuid4().int % 10**8:08d}"


def customer_says(channel: Channel, from_phone: str, text: str) -> Message:
    """An inbound text applied as the ingest drain applies it."""
    event = InboundMessage(
        provider_message_id=f"wamid.{uuid.uuid4().hex}",
        from_phone=from_phone,
        type="text",
        timestamp=timezone.now(),
        body=text,
    )
    message = inbound_apply(channel=channel, event=event)
    assert message is not None
    return message


@pytest.fixture
def ai_key(in_tenant_a: Any) -> AISettings:
    return AISettings.objects.create(api_key=OPENAI_KEY)


@pytest.fixture
def wa_channel(in_tenant_a: Any, channels: dict[str, int]) -> Channel:
    return Channel.objects.get(pk=channels["whatsapp"])


@pytest.fixture
def assistant(wa_channel: Channel) -> Assistant:
    return assistant_save(
        channels=[wa_channel],
        name="Bia",
        instructions="Você atende a Loja Sol.",
        reply_delay_s=0,
        debounce_s=5,
        handoff_after_turns=0,
    )


def conversation_of(message: Message) -> Conversation:
    return Conversation.objects.select_related("contact", "channel").get(pk=message.conversation_id)


def texts_to(meta: Any, phone: str) -> list[str]:
    """The text bodies the Meta emulator received for this phone, in order."""
    sent = list(meta.sent.values())
    return [m["text"]["body"] for m in sent if m.get("to") == phone.lstrip("+") and m.get("type") == "text"]


@pytest.fixture
def live_assistant(tenants: Any, channels: dict[str, int], committed: Any) -> Iterator[Assistant]:
    """A committed assistant on the suite's WhatsApp channel, with a key, for tests through the real worker."""
    alpha = tenants[0]
    connection.set_tenant(alpha)
    row = AISettings.objects.create(api_key=OPENAI_KEY)
    assistant = assistant_save(
        channels=[Channel.objects.get(pk=channels["whatsapp"])],
        name=f"Bia e2e {uuid.uuid4().hex[:6]}",
        reply_delay_s=0,
        debounce_s=1,
        handoff_after_turns=0,
    )
    yield assistant
    connection.set_tenant(alpha)
    assistant.delete()
    row.delete()
