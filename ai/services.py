"""Writes of the AI app: settings (the key encrypted, never shown back), assistants and their bindings,
the bot's mode per conversation (handoff, take over, give back), and the playground."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import AuditAction
from ai.engine import Answer, answer_generate, in_business_hours
from ai.grounding import passages_for
from ai.models import AISettings, Assistant, AssistantBinding, BotMode, BotReply, ConversationBot, ReplyMode
from ai.tools import Toolbox
from core import urlguard
from inbox.models import Channel, Conversation, Direction, Message

logger = logging.getLogger(__name__)


# --- settings ----------------------------------------------------------------------------------


def ai_settings_current() -> AISettings:
    """The tenant's AI settings (defaults when never saved; read without writing a row)."""
    return AISettings.objects.first() or AISettings()


def ai_settings_save(*, api_key: str = "", clear_key: bool = False, **fields: Any) -> AISettings:
    """Save the AI settings. A blank `api_key` keeps the stored one; `clear_key` removes it. A base URL
    goes through the outbound-URL guard (a tenant's URL is never a way into our network)."""
    row = AISettings.objects.first() or AISettings()
    base_url = str(fields.get("base_url") or "").strip()
    if base_url:
        try:
            urlguard.url_check(base_url)
        except urlguard.UrlRefused as exc:
            raise ValidationError({"base_url": _("This address cannot be used: %(reason)s") % {"reason": exc}}) from exc
        except urlguard.FetchFailed as exc:
            raise ValidationError(
                {"base_url": _("This address cannot be reached: %(reason)s") % {"reason": exc}}
            ) from exc
    for name, value in fields.items():
        setattr(row, name, value)
    key_changed = bool(api_key.strip()) or (clear_key and row.has_api_key)
    if api_key.strip():
        row.api_key = api_key.strip()
    elif clear_key:
        row.api_key = ""
    row.save()
    if key_changed:
        audit_record(action=AuditAction.CHANNEL_CREDENTIALS, target=row, target_label="AI API key")
    return row


# --- assistants ----------------------------------------------------------------------------------


def assistant_save(
    *,
    assistant: Assistant | None = None,
    channels: list[Channel] | None = None,
    stages: list[Any] | None = None,
    http_tools: list[Any] | None = None,
    **fields: Any,
) -> Assistant:
    """Create or update an assistant; `channels` (when given) become the channels it answers on (a channel
    already bound to another assistant is refused with its name); `stages` (when given): on those channels
    it also answers the contacts whose lead card is in one of these stages, before the channel's own."""
    assistant = assistant or Assistant()
    for name, value in fields.items():
        setattr(assistant, name, value)
    assistant.full_clean()
    with transaction.atomic():
        assistant.save()
        if http_tools is not None:
            assistant.http_tools.set(http_tools)
        if channels is not None:
            taken = AssistantBinding.objects.filter(channel__in=channels, stage__isnull=True).exclude(
                assistant=assistant
            )
            clash = taken.select_related("assistant", "channel").first()
            if clash is not None:
                raise ValidationError(
                    _("%(channel)s is already answered by %(assistant)s.")
                    % {"channel": clash.channel.name, "assistant": clash.assistant.name}
                )
            AssistantBinding.objects.filter(assistant=assistant, stage__isnull=True).exclude(
                channel__in=channels
            ).delete()
            for channel in channels:
                AssistantBinding.objects.get_or_create(assistant=assistant, channel=channel, stage=None)
        if stages is not None:
            on = channels if channels is not None else [b.channel for b in assistant.bindings.filter(stage=None)]
            staged = AssistantBinding.objects.filter(assistant=assistant, stage__isnull=False)
            staged.exclude(channel__in=on, stage__in=stages).delete()
            for channel in on:
                for stage in stages:
                    held = AssistantBinding.objects.filter(channel=channel, stage=stage).exclude(assistant=assistant)
                    if held.exists():
                        raise ValidationError(
                            _("%(channel)s · %(stage)s is already answered by another assistant.")
                            % {"channel": channel.name, "stage": stage.name}
                        )
                    AssistantBinding.objects.get_or_create(assistant=assistant, channel=channel, stage=stage)
    return assistant


def assistant_bind_stage(*, assistant: Assistant, channel: Channel, stage: Any) -> AssistantBinding:
    """This assistant answers the contacts whose lead card is in `stage`, on `channel`."""
    binding, _created = AssistantBinding.objects.update_or_create(
        channel=channel, stage=stage, defaults={"assistant": assistant}
    )
    return binding


def assistant_delete(*, assistant: Assistant) -> None:
    assistant.delete()


def assistant_for(conversation: Conversation) -> Assistant | None:
    """The active assistant that answers this conversation: the one bound to the channel and the stage of
    the contact's lead card, else the one bound to the channel."""
    from kanban.models import Card

    bindings = AssistantBinding.objects.filter(channel_id=conversation.channel_id, assistant__is_active=True)
    stage_ids = list(Card.objects.filter(contact_id=conversation.contact_id).values_list("stage_id", flat=True))
    if stage_ids:
        staged = bindings.filter(stage_id__in=stage_ids).select_related("assistant").first()
        if staged is not None:
            return staged.assistant
    plain = bindings.filter(stage__isnull=True).select_related("assistant").first()
    return plain.assistant if plain is not None else None


# --- the bot's mode per conversation ---------------------------------------------------------------


def bot_state(conversation: Conversation) -> ConversationBot:
    state, _created = ConversationBot.objects.get_or_create(conversation=conversation)
    return state


def bot_state_locked(conversation_id: int) -> ConversationBot:
    """The bot's row under a lock (made first if missing): every decision to send or stop takes it."""
    ConversationBot.objects.get_or_create(conversation_id=conversation_id)
    return ConversationBot.objects.select_for_update().get(conversation_id=conversation_id)


def bot_reply_send(
    *, conversation: Conversation, assistant: Assistant | None, answer: Answer, key: str
) -> Message | None:
    """Queue the bot's message through the one send path, marked as the bot's, with its sources. The caller
    holds the bot's row lock and checked the mode. Refusals (opted out, window closed) are logged and
    answered None: a bot never forces a message."""
    from inbox.services import message_send

    payload = {
        "sender": "bot",
        "assistant": assistant.name if assistant else "",
        "sources": [{"document_name": s["document_name"], "score": s["score"]} for s in answer.sources],
    }
    try:
        message = message_send(conversation=conversation, body=answer.text, payload=payload, idempotency_key=key)
    except ValidationError as exc:
        logger.info("bot reply not sent in conversation %s: %s", conversation.pk, getattr(exc, "code", exc))
        return None
    BotReply.objects.get_or_create(
        message=message,
        defaults={
            "assistant": assistant,
            "mode": answer.mode,
            "sources": answer.sources,
            "tool_calls": answer.tool_calls,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
        },
    )
    return message


def bot_handoff(*, conversation: Conversation, reason: str, tell_customer: bool = True) -> bool:
    """Hand the conversation to a person: the bot stops for good (until someone gives it back), the
    conversation is assigned round-robin when nobody has it, the reason is noted and the customer told.
    False when a person already had it."""
    from inbox.services import conversation_assign_round_robin, conversation_event_record, note_add

    with transaction.atomic():
        state = bot_state_locked(conversation.pk)
        if state.mode == BotMode.HUMAN:
            return False
        state.mode = BotMode.HUMAN
        state.handoff_reason = reason[:300]
        state.handed_off_at = timezone.now()
        state.reply_due_at = None
        state.save(update_fields=["mode", "handoff_reason", "handed_off_at", "reply_due_at", "updated_at"])
        conversation.refresh_from_db(fields=["assignee"])
        if conversation.assignee_id is None:
            conversation_assign_round_robin(conversation=conversation)
        note_add(
            conversation=conversation,
            body=_("🤖 Handed over to a person: %(reason)s") % {"reason": reason},
            author=None,
        )
        conversation_event_record(conversation=conversation, kind="handed_off", detail={"reason": reason[:300]})
        assistant = assistant_for(conversation)
        if tell_customer and assistant is not None and assistant.handoff_message.strip():
            answer = Answer(text=assistant.handoff_message, mode=ReplyMode.HANDOFF, handoff_reason=reason)
            bot_reply_send(
                conversation=conversation, assistant=assistant, answer=answer, key=f"bot-handoff:{uuid.uuid4().hex}"
            )
    return True


def bot_take_over(*, conversation: Conversation, user: Any) -> None:
    """A person takes the conversation: the bot says nothing more, even for a reply it is preparing."""
    from inbox.services import conversation_assign

    with transaction.atomic():
        state = bot_state_locked(conversation.pk)
        state.mode = BotMode.HUMAN
        state.reply_due_at = None
        state.handoff_reason = _("taken over by %(name)s") % {"name": getattr(user, "email", "") or "?"}
        state.handed_off_at = timezone.now()
        state.save(update_fields=["mode", "reply_due_at", "handoff_reason", "handed_off_at", "updated_at"])
        conversation.refresh_from_db(fields=["assignee"])
        if conversation.assignee_id is None and getattr(user, "is_authenticated", False):
            conversation_assign(conversation=conversation, assignee=user)


def bot_give_back(*, conversation: Conversation) -> None:
    """The assistant answers again, from the next customer message on (what came before stays with the team)."""
    with transaction.atomic():
        state = bot_state_locked(conversation.pk)
        last_inbound = (
            Message.objects.filter(conversation=conversation, direction=Direction.INBOUND).order_by("-pk").first()
        )
        state.mode = BotMode.BOT
        state.unresolved_turns = 0
        state.handoff_reason = ""
        state.handed_off_at = None
        state.answered_through_id = max(state.answered_through_id, last_inbound.pk if last_inbound else 0)
        state.save()


# --- playground --------------------------------------------------------------------------------------


@dataclass
class PlaygroundTurn:
    question: str
    answer: str
    mode: str
    passages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)


def playground_answer(*, assistant: Assistant, history: list[dict[str, str]], text: str) -> PlaygroundTurn:
    """Answer `text` as the assistant would in a conversation, showing the passages used and the tools the
    model called (checked and recorded, never applied: there is no customer here)."""
    from ai.grounding import passage_source

    row = ai_settings_current()
    passages = passages_for(assistant, text)
    toolbox = Toolbox(assistant=assistant, conversation=None)
    answer = answer_generate(
        assistant=assistant,
        row=row,
        history=[*history, {"role": "user", "content": text}],
        passages=passages,
        toolbox=toolbox,
        open_now=in_business_hours(assistant),
    )
    return PlaygroundTurn(
        question=text,
        answer=answer.text,
        mode=answer.mode,
        passages=answer.sources or [passage_source(p) for p in passages],
        tools=answer.tool_calls,
    )
