from __future__ import annotations

import uuid
from typing import Any

import pytest
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
