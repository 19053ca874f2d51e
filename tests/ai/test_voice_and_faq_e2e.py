"""As production runs them, with the live server, the real worker and the emulators: a voice note a
customer sends through the Meta emulator is fetched, transcribed (audio/transcriptions through our client
to the model emulator) and answered from its transcript, which staff see in the conversation (pushed live
to an open timeline); and a
conversation a person resolved gets a suggested FAQ pair from the `ai` queue."""

from __future__ import annotations

import base64
import json
import uuid
from contextlib import ExitStack
from typing import Any

from django.db import connection, transaction

from accounts.models import Role
from ai.models import AISettings, Assistant, FaqSuggestion
from crm.models import Contact
from emulators.meta import MetaEmulator
from emulators.openai import OpenAIEmulator
from inbox.models import Conversation, Direction, Message, MessageType
from inbox.services import conversation_set_status, message_send
from tests.ai.conftest import texts_to
from tests.conftest import OPENAI_KEY, WA_PNID, Worker, tenant_client
from tests.core.test_live_socket import _login_cookies, _open
from tests.messaging import open_conversation
from tests.support import make_member, wait_until


def test_a_voice_note_through_the_intake_is_transcribed_answered_and_shown_to_staff(
    app_server: str,
    celery_worker: Worker,
    meta_emulator: MetaEmulator,
    openai_emulator: OpenAIEmulator,
    live_assistant: Assistant,
    tenants: Any,
) -> None:
    alpha = tenants[0]
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    staff_email = f"voz-{uuid.uuid4().hex[:6]}@alpha.test"
    staff = make_member(alpha, staff_email, Role.OWNER)
    socket = ExitStack()
    live = socket.enter_context(_open(app_server, alpha, _login_cookies(app_server, alpha, staff_email)))
    audio = b"OggS" + bytes(range(256)) * 40  # what the customer's phone recorded
    openai_emulator.transcripts.append("vocês entregam no sábado de manhã?")
    openai_emulator.reply({"reply": "Entregamos sim, das 9h às 13h!", "answered": True, "sources": []}, match="sábado")
    meta_emulator.inject_inbound(
        phone_number_id=WA_PNID,
        from_phone=phone,
        type="audio",
        content={"voice": True},
        media=base64.b64encode(audio).decode(),
        mime="audio/ogg; codecs=opus",
    )
    wait_until(lambda: texts_to(meta_emulator, phone), timeout=60, what="the answer to the voice note")
    assert texts_to(meta_emulator, phone) == ["Entregamos sim, das 9h às 13h!"]
    (transcription,) = [r for r in openai_emulator.requests if r["path"] == "/v1/audio/transcriptions"]
    assert transcription["bytes"] == len(audio) and transcription["fields"]["model"] == "whisper-1"
    assert transcription["fields"]["language"] == "pt"
    (chat,) = openai_emulator.chat_requests()
    assert chat["json"]["messages"][-1] == {"role": "user", "content": "vocês entregam no sábado de manhã?"}

    connection.set_tenant(alpha)
    note = Message.objects.get(conversation__contact__phone=phone, direction=Direction.INBOUND)
    assert note.type == MessageType.AUDIO and note.media and note.payload["transcript"].startswith("vocês entregam")
    # A staff member with the conversation open is told to re-render the voice note once it has its text.
    seen: list[dict[str, Any]] = []
    while not any(e["event"] == "message.status" and e["payload"].get("id") == note.pk for e in seen):
        seen.append(json.loads(live.recv(timeout=10)))
    socket.close()
    conversation = Conversation.objects.get(contact__phone=phone)
    page = tenant_client(alpha, staff, lang="en").get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'data-testid="transcript"' in page and "vocês entregam no sábado de manhã?" in page
    row = tenant_client(alpha, staff, lang="en").get(f"/conversations/{conversation.pk}/messages/{note.pk}/")
    assert "vocês entregam no sábado de manhã?" in row.content.decode()  # what the live timeline swaps in
    Contact.objects.filter(phone=phone).delete()


def test_resolving_a_conversation_queues_a_suggested_faq_pair(
    app_server: str,
    celery_worker: Worker,
    openai_emulator: OpenAIEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    row = AISettings.objects.create(api_key=OPENAI_KEY)
    agent = make_member(alpha, f"faq-{uuid.uuid4().hex[:6]}@alpha.test", Role.AGENT)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    conversation = open_conversation(channels["whatsapp"], phone)
    Message.objects.create(
        conversation=conversation,
        channel_id=channels["whatsapp"],
        direction=Direction.INBOUND,
        body="vocês fazem entrega em Sorocaba?",
        idempotency_key=f"in:test:{uuid.uuid4().hex}",
    )
    try:
        message_send(conversation=conversation, body="Fazemos sim, frete de R$ 20 e entrega em 2 dias.", author=agent)
        conversation_set_status(conversation=conversation, status="resolved")  # announced: the ai queue works

        def suggested() -> bool:
            connection.set_tenant(alpha)
            return FaqSuggestion.objects.filter(conversation=conversation).exists()

        wait_until(suggested, timeout=45, what="the suggested FAQ pair from the worker")
        suggestion = FaqSuggestion.objects.get(conversation=conversation)
        assert suggestion.question == "vocês fazem entrega em Sorocaba?"
        assert suggestion.answer == "Fazemos sim, frete de R$ 20 e entrega em 2 dias."
    finally:
        connection.set_tenant(alpha)
        with transaction.atomic():  # the worker may still be learning the contact's identity from a status
            list(Contact.objects.select_for_update().filter(phone=phone))
            Contact.objects.filter(phone=phone).delete()
        row.delete()
