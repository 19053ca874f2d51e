"""The assistant in the inbox: an inbound message in bot mode schedules one debounced reply on the `ai`
queue; the reply is generated, then checked again under the bot's row lock right before it is queued
through the one send path, so a person who took over in the meantime is never talked over.

Handoff rules: a keyword ("atendente", "humano", "falar com alguém", ...), low retrieval confidence, N
answers in a row the model marked unanswered, or the model's handoff tool."""

from __future__ import annotations

import logging
import random
import time
import unicodedata
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from ai.client import AIError
from ai.engine import Answer, answer_generate, in_business_hours
from ai.grounding import passages_for
from ai.models import Assistant, BotMode, ConversationBot, OutOfHours, ReplyMode
from ai.services import ai_settings_current, assistant_for, bot_handoff, bot_reply_send, bot_state_locked
from ai.tools import Toolbox
from ai.usage import ai_refusal
from core import events
from crm.services import MEDIUM_OF_KIND, consent_keyword
from inbox.models import Conversation, Direction, Message, MessageType

logger = logging.getLogger(__name__)

HISTORY_MESSAGES = 20
MAX_MODEL_RETRIES = 3


def subscribe() -> None:
    events.subscribe(events.MESSAGE_CREATED, _message_created)


def _message_created(schema_name: str, payload: dict[str, Any]) -> None:
    with schema_context(schema_name):
        if payload.get("direction") == Direction.INBOUND:
            bot_inbound(message_id=int(payload["id"]))
        elif payload.get("direction") == Direction.OUTBOUND:
            _agent_replied(message_id=int(payload["id"]))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def keyword_handoff(assistant: Assistant, text: str) -> str:
    """The handoff keyword the customer wrote (accents and case ignored), or ''."""
    folded = f" {_fold(text)} "
    for keyword in assistant.lines("handoff_keywords"):
        if f" {_fold(keyword)} " in folded or (" " in keyword and _fold(keyword) in folded):
            return keyword
    return ""


def _agent_replied(*, message_id: int) -> None:
    """A person answered the customer: the bot stays quiet from now on."""
    message = Message.objects.filter(pk=message_id, author__isnull=False).only("conversation_id").first()
    if message is None:
        return
    ConversationBot.objects.filter(conversation_id=message.conversation_id, mode=BotMode.BOT).update(
        mode=BotMode.HUMAN, handoff_reason="agent replied", handed_off_at=timezone.now(), reply_due_at=None
    )


def bot_inbound(*, message_id: int) -> None:
    """An inbound message arrived: hand off at once on a keyword, else (re)start the debounce and schedule
    the reply task for when it ends."""
    message = (
        Message.objects.select_related("conversation__channel", "conversation__contact").filter(pk=message_id).first()
    )
    if message is None or message.direction != Direction.INBOUND:
        return
    conversation = message.conversation
    assistant = assistant_for(conversation)
    if assistant is None:
        return
    state, _created = ConversationBot.objects.get_or_create(conversation=conversation)
    if state.mode != BotMode.BOT:
        return
    text = message.body or ""
    if message.type == MessageType.TEXT and consent_keyword(text, MEDIUM_OF_KIND[conversation.channel.kind]):
        return  # STOP/START get the consent confirmation, not a bot answer
    keyword = keyword_handoff(assistant, text)
    if keyword:
        bot_handoff(conversation=conversation, reason=f'the customer asked for a person ("{keyword}")')
        return
    due = timezone.now() + timedelta(seconds=assistant.debounce_s)
    ConversationBot.objects.filter(pk=state.pk, mode=BotMode.BOT).update(reply_due_at=due)
    reply_schedule(conversation_id=conversation.pk, countdown=float(assistant.debounce_s))


def reply_schedule(*, conversation_id: int, countdown: float) -> None:
    """The reply task on the `ai` queue, after commit, in this tenant's schema."""
    from ai.tasks import bot_reply

    schema = getattr(connection, "schema_name", "public")
    transaction.on_commit(
        lambda: bot_reply.apply_async(
            args=(conversation_id,), queue="ai", countdown=countdown, headers={"_schema_name": schema}
        )
    )


def _text_of(message: Message) -> str:
    """What the customer said: the text, or a voice note's transcript."""
    return message.body or str((message.payload or {}).get("transcript") or "")


def voice_note_transcribe(*, message: Message, row: Any, language: str = "") -> str:
    """Transcribe an inbound voice note once; the transcript is kept on the message (staff see it too)."""
    from ai.client import transcribe

    if not message.media:
        return ""
    with message.media.open("rb") as fh:
        audio = fh.read()
    text = transcribe(
        row=row,
        audio=audio,
        filename=message.media_filename or str(message.media.name or "voice.ogg").rsplit("/", 1)[-1],
        mime=message.media_mime or "audio/ogg",
        language=language,
    )
    message.payload = {**(message.payload or {}), "transcript": text}
    message.save(update_fields=["payload"])
    _transcript_shown(message)
    return text


def _transcript_shown(message: Message) -> None:
    """Staff with the conversation open see the transcript at once: their timeline re-renders the message
    (a live push only, not a status event: webhooks and analytics have nothing new to hear)."""
    from core.realtime import STAFF_TOPIC, push
    from inbox.selectors import conversation_audience

    schema = getattr(connection, "schema_name", "public")
    payload = {"id": message.pk, "conversation_id": message.conversation_id, "status": message.status, "error": ""}
    audience = conversation_audience(conversation_id=message.conversation_id)
    transaction.on_commit(lambda: push(schema, STAFF_TOPIC, events.MESSAGE_STATUS, payload, audience=audience))


def _history(conversation: Conversation, pending: list[Message]) -> list[dict[str, str]]:
    recent = [
        m
        for m in Message.objects.filter(
            conversation=conversation, direction__in=[Direction.INBOUND, Direction.OUTBOUND]
        ).order_by("-created_at", "-pk")[:HISTORY_MESSAGES]
        if _text_of(m)
    ]
    recent.reverse()
    pending_ids = {m.pk for m in pending}
    history = [
        {"role": "user" if m.direction == Direction.INBOUND else "assistant", "content": _text_of(m)}
        for m in recent
        if m.pk not in pending_ids
    ]
    joined = "\n".join(_text_of(m) for m in pending if _text_of(m))
    if joined:
        history.append({"role": "user", "content": joined})
    return history


def bot_reply(*, conversation_id: int, attempt: int = 0) -> float | None:
    """Answer what the customer sent since the last answer, once the debounce has passed. Returns a delay
    when the model asked us to come back later (rate limit, 5xx, timeout)."""
    now = timezone.now()
    claimed = ConversationBot.objects.filter(
        Q(reply_due_at__lte=now), conversation_id=conversation_id, mode=BotMode.BOT
    ).update(reply_due_at=None)
    if claimed != 1:
        return None  # not due yet (a later task will answer), already answered, or a person has it
    conversation = Conversation.objects.select_related("channel", "contact").get(pk=conversation_id)
    state = ConversationBot.objects.get(conversation_id=conversation_id)
    pending = list(
        Message.objects.filter(
            conversation=conversation, direction=Direction.INBOUND, pk__gt=state.answered_through_id
        ).order_by("pk")
    )
    assistant = assistant_for(conversation)
    if not pending or assistant is None:
        return None
    refused, why = ai_refusal()
    if refused:  # the plan leaves AI out, or this month's tokens are spent: a person answers instead
        logger.warning("assistant %s hands conversation %s over: %s", assistant.pk, conversation_id, refused)
        bot_handoff(conversation=conversation, reason=why)
        return None
    last_id = pending[-1].pk
    row = ai_settings_current()
    for m in pending:
        if m.type == MessageType.AUDIO and not m.body and "transcript" not in (m.payload or {}) and row.has_api_key:
            if not m.media and attempt < MAX_MODEL_RETRIES:  # the voice note is still being downloaded
                ConversationBot.objects.filter(conversation_id=conversation_id, mode=BotMode.BOT).update(
                    reply_due_at=now
                )
                return 2.0
            try:
                voice_note_transcribe(message=m, row=row, language=assistant.language)
            except AIError as exc:
                logger.warning("voice note %s not transcribed (%s)", m.pk, exc.code)
    query = " ".join(_text_of(m) for m in pending if _text_of(m))
    open_now = in_business_hours(assistant)
    answer: Answer | None = None
    if not open_now and assistant.out_of_hours == OutOfHours.SILENT:
        if assistant.out_of_hours_message.strip():
            answer = Answer(text=assistant.out_of_hours_message, mode=ReplyMode.FALLBACK, answered=False)
        else:
            _mark_answered(conversation_id, last_id, answered=True)
            return None
    passages = passages_for(assistant, query) if answer is None else []
    low_confidence = assistant.handoff_min_score > 0 and (
        not passages or float(passages[0].score) < assistant.handoff_min_score
    )
    if answer is None and low_confidence:
        bot_handoff(conversation=conversation, reason="low retrieval confidence")
        return None
    if answer is None:
        try:
            answer = answer_generate(
                assistant=assistant,
                row=row,
                history=_history(conversation, pending),
                passages=passages,
                toolbox=Toolbox(assistant=assistant, conversation=conversation),
                open_now=open_now,
            )
        except AIError as exc:
            if attempt < MAX_MODEL_RETRIES:
                delay = min(60.0, 2.0 * 2**attempt) * (0.75 + random.random() / 2)  # noqa: S311 (jitter)
                ConversationBot.objects.filter(conversation_id=conversation_id, mode=BotMode.BOT).update(
                    reply_due_at=now
                )
                logger.warning("assistant %s: model unavailable (%s), retrying in %.0fs", assistant.pk, exc.code, delay)
                return delay
            logger.error("assistant %s: model unavailable after retries (%s): fallback message", assistant.pk, exc.code)
            answer = Answer(text=assistant.fallback_message, mode=ReplyMode.FALLBACK, answered=False)
    _humanise(conversation, assistant)
    _deliver(conversation, assistant, answer, last_id)
    return None


def _humanise(conversation: Conversation, assistant: Assistant) -> None:
    """A short pause before answering, with "typing…" where the channel's provider can show it."""
    delay = min(float(assistant.reply_delay_s), float(settings.AI_REPLY_DELAY_MAX_S))
    if delay <= 0:
        return
    from inbox.providers import provider_for

    typing = getattr(provider_for(conversation.channel), "typing", None)
    if callable(typing):
        try:
            typing(conversation.contact.phone)
        except Exception:  # presence is a nicety; the answer goes anyway
            logger.exception("typing presence failed on channel %s", conversation.channel_id)
    time.sleep(delay)


def _mark_answered(conversation_id: int, last_id: int, *, answered: bool) -> None:
    with transaction.atomic():
        state = bot_state_locked(conversation_id)
        state.answered_through_id = max(state.answered_through_id, last_id)
        state.unresolved_turns = 0 if answered else state.unresolved_turns + 1
        state.save(update_fields=["answered_through_id", "unresolved_turns", "updated_at"])


def _deliver(conversation: Conversation, assistant: Assistant, answer: Answer, last_id: int) -> None:
    """Queue the answer unless a person took over meanwhile (checked under the bot's row lock, which a
    takeover and a handoff take too); then apply the handoff the answer asked for."""
    with transaction.atomic():
        state = bot_state_locked(conversation.pk)
        if state.mode != BotMode.BOT:
            logger.info("conversation %s: a person took over while the bot was answering: dropped", conversation.pk)
            return
        unresolved = 0 if answer.answered else state.unresolved_turns + 1
        turns_limit = assistant.handoff_after_turns
        if not answer.handoff_reason and turns_limit and unresolved >= turns_limit:
            answer.handoff_reason = f"{unresolved} answers without resolution"
        if answer.handoff_reason:
            state.answered_through_id = max(state.answered_through_id, last_id)
            state.save(update_fields=["answered_through_id", "updated_at"])
        else:
            first = not Message.objects.filter(conversation=conversation, direction=Direction.OUTBOUND).exists()
            if first and assistant.greeting.strip():
                greeting = Answer(text=assistant.greeting, mode=ReplyMode.GREETING)
                bot_reply_send(
                    conversation=conversation, assistant=assistant, answer=greeting, key=f"bot-greet:{conversation.pk}"
                )
            bot_reply_send(
                conversation=conversation, assistant=assistant, answer=answer, key=f"bot:{conversation.pk}:{last_id}"
            )
            state.answered_through_id = max(state.answered_through_id, last_id)
            state.unresolved_turns = unresolved
            state.save(update_fields=["answered_through_id", "unresolved_turns", "updated_at"])
    if answer.handoff_reason:
        if answer.mode != ReplyMode.HANDOFF and answer.text.strip():
            with transaction.atomic():
                if bot_state_locked(conversation.pk).mode == BotMode.BOT:
                    bot_reply_send(
                        conversation=conversation,
                        assistant=assistant,
                        answer=answer,
                        key=f"bot:{conversation.pk}:{last_id}",
                    )
        bot_handoff(conversation=conversation, reason=answer.handoff_reason)
