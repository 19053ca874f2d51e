"""The assistant as production runs it: a customer writes through the Meta emulator (signed webhook to the
live server), the worker applies it, the `ai` queue answers after the debounce with the model emulator, and
the answer leaves through the one send path to the Meta emulator. A handoff keyword stops every later
answer, including one the model is still writing."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.db import connection

from ai.models import Assistant, BotMode, BotReply, ConversationBot
from emulators.meta import MetaEmulator
from emulators.openai import OpenAIEmulator
from inbox.models import Conversation, Direction, Message
from tests.ai.conftest import texts_to
from tests.conftest import WA_PNID, Worker
from tests.support import wait_until


def test_an_inbound_message_in_bot_mode_is_answered_through_the_meta_api(
    app_server: str,
    celery_worker: Worker,
    meta_emulator: MetaEmulator,
    openai_emulator: OpenAIEmulator,
    live_assistant: Assistant,
    tenants: Any,
) -> None:
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    openai_emulator.reply({"reply": "Abrimos das 9h às 18h 😊", "answered": True, "sources": []}, match="horário")
    meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=phone, text="oi, qual o horário?")
    wait_until(lambda: texts_to(meta_emulator, phone), timeout=45, what="the bot's answer at the Meta emulator")
    assert texts_to(meta_emulator, phone) == ["Abrimos das 9h às 18h 😊"]
    connection.set_tenant(tenants[0])
    # The dispatcher writes its answers back in bulk right after the request returns: wait for that write.
    sent = wait_until(
        lambda: Message.objects.filter(
            conversation__contact__phone=phone, direction=Direction.OUTBOUND, provider_message_id__isnull=False
        ).first(),
        timeout=10,
        what="the send to be recorded",
    )
    assert sent.payload["sender"] == "bot" and sent.status != "sending"
    assert BotReply.objects.get(message=sent).assistant_id == live_assistant.pk


def test_a_handoff_keyword_stops_every_later_answer_even_one_in_flight(
    app_server: str,
    celery_worker: Worker,
    meta_emulator: MetaEmulator,
    openai_emulator: OpenAIEmulator,
    live_assistant: Assistant,
    tenants: Any,
) -> None:
    alpha = tenants[0]
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    # The model takes 5 s over this answer: the customer asks for a person meanwhile.
    openai_emulator.reply({"reply": "ORÇAMENTO-NUNCA", "answered": True, "sources": []}, delay_s=5, match="orçamento")
    meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=phone, text="preciso de um orçamento")
    wait_until(lambda: openai_emulator.chat_requests(), timeout=45, what="the model to be asked")
    meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=phone, text="quero falar com um atendente")
    wait_until(lambda: texts_to(meta_emulator, phone), timeout=45, what="the handoff message")

    def settled() -> bool:
        connection.set_tenant(alpha)
        state = ConversationBot.objects.filter(conversation__contact__phone=phone).first()
        return state is not None and state.mode == BotMode.HUMAN

    wait_until(settled, timeout=10)
    time.sleep(6)  # the answer in flight has come back from the model by now, and was dropped
    meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=phone, text="alô? alguém?")
    connection.set_tenant(alpha)
    wait_until(
        lambda: Message.objects.filter(conversation__contact__phone=phone, direction=Direction.INBOUND).count() == 3,
        timeout=30,
        what="the third message to be applied",
    )
    time.sleep(3)  # longer than the debounce: a reply would be on its way
    connection.set_tenant(alpha)
    assert texts_to(meta_emulator, phone) == [live_assistant.handoff_message]
    conversation = Conversation.objects.get(contact__phone=phone)
    assert conversation.messages.filter(direction=Direction.NOTE, body__contains="atendente").exists()
    assert len(openai_emulator.chat_requests()) == 1  # the one in flight; nothing asked after the handoff
