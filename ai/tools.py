"""The tools an assistant may call. Model output is untrusted: a call is a request, checked here. Only the
tools the assistant allows are offered, a call to any other is refused, and every tool acts on the
conversation's own contact only (no tool takes a contact, card or conversation id)."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ai.client import ToolCall, ToolSpec
from ai.models import Assistant, Tool
from crm.models import Contact, CustomField, Tag
from crm.services import contact_update, contacts_tag, contacts_untag
from inbox.models import Conversation

logger = logging.getLogger(__name__)


def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _stage_names() -> list[str]:
    from kanban.models import Stage, StageKind

    return list(Stage.objects.filter(kind=StageKind.OPEN).order_by("board_id", "rank").values_list("name", flat=True))


def tool_specs(assistant: Assistant, http_tools: list[Any] | None = None) -> list[ToolSpec]:
    """The function definitions offered to the model: the allowed tools only (nothing is read for a tool
    that is not allowed: this runs before every answer)."""
    allowed = set(assistant.allowed_tools)
    specs: list[ToolSpec] = []
    if Tool.HANDOFF in allowed:
        specs.append(
            ToolSpec(
                Tool.HANDOFF,
                "Hand the conversation over to a person of the team (the customer asked for one, is upset, "
                "or you cannot help). Say why.",
                _obj({"reason": {"type": "string"}}),
            )
        )
    tags = (
        list(Tag.objects.order_by("name").values_list("name", flat=True)[:100])
        if allowed & {Tool.TAG_ADD, Tool.TAG_REMOVE}
        else []
    )
    if Tool.TAG_ADD in allowed and tags:
        specs.append(
            ToolSpec(Tool.TAG_ADD, "Add a tag to this customer.", _obj({"tag": {"type": "string", "enum": tags}}))
        )
    if Tool.TAG_REMOVE in allowed and tags:
        specs.append(
            ToolSpec(
                Tool.TAG_REMOVE, "Remove a tag from this customer.", _obj({"tag": {"type": "string", "enum": tags}})
            )
        )
    if Tool.CONTACT_FIELD in allowed:
        fields = list(CustomField.objects.order_by("key").values_list("key", flat=True)[:100])
        names = ["name", "email", *fields]
        specs.append(
            ToolSpec(
                Tool.CONTACT_FIELD,
                "Save something the customer told you about themselves (their name, email or a custom field).",
                _obj({"field": {"type": "string", "enum": names}, "value": {"type": "string"}}),
            )
        )
    stages = _stage_names() if Tool.LEAD_CARD in allowed else []
    if Tool.LEAD_CARD in allowed and stages:
        specs.append(
            ToolSpec(
                Tool.LEAD_CARD,
                "Create this customer's lead card or move it to a stage of the pipeline. Say why.",
                _obj({"stage": {"type": "string", "enum": stages}, "reason": {"type": "string"}}),
            )
        )
    cadences = _cadence_names() if Tool.CADENCE in allowed else []
    if Tool.CADENCE in allowed and cadences:
        specs.append(
            ToolSpec(
                Tool.CADENCE,
                "Enroll this customer in a follow-up cadence (a sequence of messages) when they asked to be "
                "followed up or it fits what they want.",
                _obj({"cadence": {"type": "string", "enum": cadences}}),
            )
        )
    if Tool.CALLBACK in allowed:
        specs.append(
            ToolSpec(
                Tool.CALLBACK,
                "Schedule a callback by the team on a date the customer asked for (YYYY-MM-DD).",
                _obj({"date": {"type": "string"}, "note": {"type": "string"}}),
            )
        )
    if assistant.pk is not None:
        from ai.http_tools import http_tool_spec

        found = _http_tools(assistant) if http_tools is None else http_tools
        specs.extend(http_tool_spec(t) for t in found)
    return specs


def _cadence_names() -> list[str]:
    from campaigns.models import Cadence

    return list(Cadence.objects.filter(is_active=True).order_by("name").values_list("name", flat=True)[:100])


def _http_tools(assistant: Assistant) -> list[Any]:
    return list(assistant.http_tools.filter(is_active=True).order_by("name"))


class Toolbox:
    """Runs the model's tool calls for one reply. `conversation` None (the playground): calls are checked and
    recorded, never applied."""

    def __init__(self, *, assistant: Assistant, conversation: Conversation | None) -> None:
        self.assistant = assistant
        self.conversation = conversation
        http_tools = _http_tools(assistant) if assistant.pk is not None else []
        self.specs = tool_specs(assistant, http_tools)
        self.offered = {s.name for s in self.specs}
        self.http = {t.function_name: t for t in http_tools}
        self.handoff_reason = ""
        self.calls: list[dict[str, Any]] = []

    def run(self, call: ToolCall) -> dict[str, Any]:
        args = call.parsed()
        record: dict[str, Any] = {"name": call.name, "arguments": args}
        if call.name not in self.offered:
            result: dict[str, Any] = {"ok": False, "error": "this tool is not available"}
            logger.warning(
                "assistant %s: refused a call to a tool it was not offered: %s", self.assistant.pk, call.name
            )
        elif call.name in self.http:
            result = self._http(call.name, args)
        elif self.conversation is None:
            result = {"ok": True, "dry_run": True}
            if call.name == Tool.HANDOFF:
                self.handoff_reason = str(args.get("reason") or "")[:200] or "handoff tool"
        else:
            try:
                with transaction.atomic():
                    result = self._apply(call.name, args)
            except (ValidationError, ValueError, LookupError) as exc:
                text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                result = {"ok": False, "error": text[:300]}
        record["result"] = result
        self.calls.append(record)
        return result

    def _http(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """A custom HTTP tool: outside any transaction (a network call), about the conversation's own contact.
        In the playground the arguments are checked and nothing is sent."""
        from ai.http_tools import arguments_problem, http_tool_call, subject_of

        tool = self.http[name]
        if self.conversation is None:
            problem = arguments_problem(tool, args)
            if problem:
                return {"ok": False, "error": f"the arguments do not match the tool's schema: {problem}"}
            return {"ok": True, "dry_run": True}
        return http_tool_call(tool=tool, arguments=args, subject=subject_of(self.conversation, self.assistant.name))

    def _apply(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        assert self.conversation is not None
        contact = self.conversation.contact  # the conversation's own contact, whatever the arguments say
        if name == Tool.HANDOFF:
            self.handoff_reason = str(args.get("reason") or "")[:200] or "handoff tool"
            return {"ok": True}
        if name in (Tool.TAG_ADD, Tool.TAG_REMOVE):
            tag = Tag.objects.get(name__iexact=str(args.get("tag") or ""))
            # through crm's services: a tag newly on the contact is announced (automation rules start from it)
            (contacts_tag if name == Tool.TAG_ADD else contacts_untag)(
                contacts=Contact.objects.filter(pk=contact.pk), tag=tag
            )
            return {"ok": True, "tag": tag.name}
        if name == Tool.CONTACT_FIELD:
            field, value = str(args.get("field") or ""), str(args.get("value") or "")[:500]
            if field in ("name", "email"):
                contact_update(contact=contact, **{field: value})
            else:
                contact_update(contact=contact, custom_fields={field: value})
            return {"ok": True, "field": field}
        if name == Tool.LEAD_CARD:
            return self._lead_card(contact, str(args.get("stage") or ""), str(args.get("reason") or "")[:250])
        if name == Tool.CADENCE:
            return self._cadence(contact, str(args.get("cadence") or ""))
        if name == Tool.CALLBACK:
            return self._callback(contact, str(args.get("date") or ""), str(args.get("note") or "")[:300])
        raise ValueError("unknown tool")

    def _lead_card(self, contact: Any, stage_name: str, reason: str) -> dict[str, Any]:
        from kanban.models import ActorKind, Card, Stage, StageKind
        from kanban.services import card_create, card_move

        stage = Stage.objects.filter(name__iexact=stage_name, kind=StageKind.OPEN).order_by("board_id").first()
        if stage is None:
            raise ValueError("no open stage has that name (won and lost are set by people)")
        why = f"AI ({self.assistant.name}): {reason}" if reason else f"AI ({self.assistant.name})"
        card = Card.objects.filter(contact=contact, board_id=stage.board_id).order_by("-updated_at").first()
        if card is None:
            card = card_create(
                board=stage.board,
                stage=stage,
                title=contact.display_name,
                contact=contact,
                actor_kind=ActorKind.AI,
                source="assistant",
            )
            self._note(
                _("🤖 %(assistant)s created the lead card in %(stage)s: %(reason)s")
                if reason
                else _("🤖 %(assistant)s created the lead card in %(stage)s"),
                stage=stage.name,
                reason=reason,
            )
            return {"ok": True, "card": card.pk, "stage": stage.name, "created": True}
        moved = card.stage_id != stage.pk
        card_move(card_id=card.pk, to_stage_id=stage.pk, actor_kind=ActorKind.AI, reason=why)
        if moved:
            self._note(
                _("🤖 %(assistant)s moved the lead card to %(stage)s: %(reason)s")
                if reason
                else _("🤖 %(assistant)s moved the lead card to %(stage)s"),
                stage=stage.name,
                reason=reason,
            )
        return {"ok": True, "card": card.pk, "stage": stage.name}

    def _note(self, text: str, **values: str) -> None:
        """What the assistant did, as a private note in the conversation (staff see it; the customer not)."""
        from inbox.services import note_add

        assert self.conversation is not None
        note_add(conversation=self.conversation, body=text % {"assistant": self.assistant.name, **values}, author=None)

    def _cadence(self, contact: Any, name: str) -> dict[str, Any]:
        """Through the campaigns service, for this contact only (already in it: left where they are)."""
        from campaigns.models import Cadence
        from campaigns.services import cadence_enroll
        from crm.models import Contact
        from inbox.services import note_add

        cadence = Cadence.objects.filter(name__iexact=name, is_active=True).order_by("pk").first()
        if cadence is None:
            raise ValueError("no active cadence has that name")
        started = cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
        assert self.conversation is not None
        note_add(
            conversation=self.conversation,
            body=(
                _("🤖 %(assistant)s enrolled the contact in the cadence %(cadence)s")
                if started
                else _("🤖 %(assistant)s: the contact is already in the cadence %(cadence)s")
            )
            % {"assistant": self.assistant.name, "cadence": cadence.name},
            author=None,
        )
        return {"ok": True, "cadence": cadence.name, "enrolled": bool(started)}

    def _callback(self, contact: Any, when: str, note: str) -> dict[str, Any]:
        from kanban.models import Card
        from kanban.services import card_update

        try:
            day = date.fromisoformat(when[:10])
        except ValueError as exc:
            raise ValueError("the date must be YYYY-MM-DD") from exc
        if day < timezone.localdate():
            raise ValueError("that date has passed")
        self._note(
            _("📞 %(assistant)s: call back on %(day)s — %(note)s")
            if note
            else _("📞 %(assistant)s: call back on %(day)s"),
            day=day.isoformat(),
            note=note,
        )
        card = Card.objects.filter(contact=contact).order_by("-updated_at").first()
        if card is not None:
            card_update(card=card, next_action_at=day)
        return {"ok": True, "date": day.isoformat()}
