"""The THEN part of a rule: each action kind, cleaned when a rule is saved, described for a dry run and
run through the owning app's services (sends through the one send service)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from automations.conditions import EventContext
from campaigns.models import Cadence, CadenceStep, ContentKind
from campaigns.services import cadence_enroll, content_render, outreach_send
from core import contributions
from crm.models import Contact, Tag
from crm.services import contacts_tag, contacts_untag
from inbox.models import Channel, Conversation
from inbox.services import conversation_assign, conversation_assign_round_robin, conversation_open, message_send
from kanban.models import ActorKind, Board, Card, Stage
from kanban.services import card_create, card_move
from tenants.selectors import tenant_current
from voice.models import AgentDirection, VoiceAgent
from voice.outbound import call_queue

ACTION_TYPES = {
    "reply": gettext_lazy("Reply with a message"),
    "send_template": gettext_lazy("Send a WhatsApp template"),
    "tag_add": gettext_lazy("Add a tag"),
    "tag_remove": gettext_lazy("Remove a tag"),
    "card_move": gettext_lazy("Move the lead card"),
    "assign": gettext_lazy("Assign an agent"),
    "assign_round_robin": gettext_lazy("Assign round-robin"),
    "cadence_enroll": gettext_lazy("Enroll in a cadence"),
    "hand_to_assistant": gettext_lazy("Hand to the assistant"),
    "hand_to_person": gettext_lazy("Hand to a person"),
    "webhook_call": gettext_lazy("Call an outgoing webhook"),
    "voice_call": gettext_lazy("Place an AI call"),
}


class ActionSkipped(Exception):
    """The action has nothing to act on here (no conversation, say): recorded, not an error."""


def _id(raw: Any, what: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationError(_("Choose %(what)s.") % {"what": what}) from exc


def webhook_endpoints() -> list[tuple[int, str]]:
    return [tuple(e) for e in contributions.collect(contributions.RULE_WEBHOOK_ENDPOINTS)]  # type: ignore[misc]


def members() -> list[User]:
    return list(User.objects.filter(memberships__tenant=tenant_current(), is_active=True).order_by("email"))


def action_clean(raw: dict[str, Any]) -> dict[str, Any]:
    """One action as stored, or a ValidationError. Every id must name a row of this tenant."""
    kind = str(raw.get("type", ""))
    if kind not in ACTION_TYPES:
        raise ValidationError(_("Unknown action: %(type)s.") % {"type": kind})
    if kind == "reply":
        text = str(raw.get("text", "")).strip()
        if not text:
            raise ValidationError(_("Write the reply."))
        return {"type": kind, "text": text[:4000]}
    if kind == "send_template":
        name = str(raw.get("template_name", "")).strip()
        if not name:
            raise ValidationError(_("Choose an approved template."))
        channel_id = raw.get("channel_id")
        if channel_id not in (None, ""):
            channel_id = _id(channel_id, _("a channel"))
            if not Channel.objects.filter(pk=channel_id).exists():
                raise ValidationError(_("That channel does not exist."))
        variables = raw.get("variables") or []
        if isinstance(variables, str):
            variables = [v for v in variables.splitlines() if v.strip()]
        return {
            "type": kind,
            "template_name": name[:512],
            "language": str(raw.get("language", "pt_BR"))[:15] or "pt_BR",
            "variables": [str(v)[:500] for v in variables][:10],
            "channel_id": channel_id or None,
        }
    if kind in ("tag_add", "tag_remove"):
        tag_id = _id(raw.get("tag_id"), _("a tag"))
        if not Tag.objects.filter(pk=tag_id).exists():
            raise ValidationError(_("That tag does not exist."))
        return {"type": kind, "tag_id": tag_id}
    if kind == "card_move":
        stage_id = _id(raw.get("stage_id"), _("a stage"))
        stage = Stage.objects.filter(pk=stage_id).first()
        if stage is None:
            raise ValidationError(_("That stage does not exist."))
        return {"type": kind, "board_id": stage.board_id, "stage_id": stage_id}
    if kind == "assign":
        user_id = _id(raw.get("user_id"), _("an agent"))
        if not any(m.pk == user_id for m in members()):
            raise ValidationError(_("That person is not a member of this workspace."))
        return {"type": kind, "user_id": user_id}
    if kind == "cadence_enroll":
        cadence_id = _id(raw.get("cadence_id"), _("a cadence"))
        if not Cadence.objects.filter(pk=cadence_id).exists():
            raise ValidationError(_("That cadence does not exist."))
        return {"type": kind, "cadence_id": cadence_id}
    if kind == "hand_to_person":
        return {"type": kind, "reason": str(raw.get("reason", "")).strip()[:200] or _("automation rule")}
    if kind == "webhook_call":
        endpoint_id = _id(raw.get("endpoint_id"), _("an endpoint"))
        if endpoint_id not in {pk for pk, _label in webhook_endpoints()}:
            raise ValidationError(_("That webhook endpoint does not exist or is disabled."))
        return {"type": kind, "endpoint_id": endpoint_id}
    if kind == "voice_call":
        agent_id = _id(raw.get("agent_id"), _("a voice agent"))
        if not VoiceAgent.objects.filter(pk=agent_id).exclude(direction=AgentDirection.INBOUND).exists():
            raise ValidationError(_("That voice agent does not exist or only answers incoming calls."))
        return {"type": kind, "agent_id": agent_id}
    return {"type": kind}


def action_describe(action: dict[str, Any]) -> str:
    """What the action would do, in words (the dry run and the editor's summary)."""
    kind = action["type"]
    label = str(ACTION_TYPES.get(kind, kind))
    detail = ""
    if kind == "reply":
        detail = action["text"][:80]
    elif kind == "send_template":
        detail = action["template_name"]
    elif kind in ("tag_add", "tag_remove"):
        detail = Tag.objects.filter(pk=action["tag_id"]).values_list("name", flat=True).first() or "?"
    elif kind == "card_move":
        stage = Stage.objects.select_related("board").filter(pk=action["stage_id"]).first()
        detail = f"{stage.board.name} > {stage.name}" if stage else "?"
    elif kind == "assign":
        detail = User.objects.filter(pk=action["user_id"]).values_list("email", flat=True).first() or "?"
    elif kind == "cadence_enroll":
        detail = Cadence.objects.filter(pk=action["cadence_id"]).values_list("name", flat=True).first() or "?"
    elif kind == "webhook_call":
        detail = dict(webhook_endpoints()).get(action["endpoint_id"], "?")
    elif kind == "hand_to_person":
        detail = action["reason"]
    elif kind == "voice_call":
        detail = VoiceAgent.objects.filter(pk=action["agent_id"]).values_list("name", flat=True).first() or "?"
    return f"{label}: {detail}" if detail else label


def _conversation(ctx: EventContext) -> Conversation:
    if ctx.conversation is None:
        raise ActionSkipped(_("no conversation with this contact"))
    return ctx.conversation


def _contact(ctx: EventContext) -> Contact:
    if ctx.contact is None:
        raise ActionSkipped(_("the event names no contact"))
    return ctx.contact


def action_run(action: dict[str, Any], ctx: EventContext, key: str) -> str:
    """Do it; returns a short detail for the log. Raises ValidationError (what the user can act on),
    ActionSkipped, or anything else (logged as an internal error by the caller). `key` makes sends
    idempotent: the same rule on the same event never sends twice."""
    kind = action["type"]
    if kind == "reply":
        conversation, contact = _conversation(ctx), _contact(ctx)
        message = message_send(
            conversation=conversation, body=content_render(action["text"], contact), idempotency_key=key
        )
        return f"message {message.pk}"
    if kind == "send_template":
        contact = _contact(ctx)
        if action.get("channel_id"):
            conversation = conversation_open(contact=contact, channel=Channel.objects.get(pk=action["channel_id"]))
        else:
            conversation = _conversation(ctx)
        content = CadenceStep(
            kind=ContentKind.TEMPLATE,
            template_name=action["template_name"],
            template_language=action["language"],
            template_variables=action["variables"],
        )
        message = outreach_send(
            content=content,
            channel=conversation.channel,
            contact=contact,
            conversation=conversation,
            idempotency_key=key,
        )
        return f"message {message.pk}"
    if kind in ("tag_add", "tag_remove"):
        tag = Tag.objects.get(pk=action["tag_id"])
        contacts = Contact.objects.filter(pk=_contact(ctx).pk)
        (contacts_tag if kind == "tag_add" else contacts_untag)(contacts=contacts, tag=tag)
        return tag.name
    if kind == "card_move":
        contact = _contact(ctx)
        board = Board.objects.get(pk=action["board_id"])
        stage = Stage.objects.get(pk=action["stage_id"], board=board)
        card = Card.objects.filter(board=board, contact=contact).order_by("-pk").first()
        if card is None:
            card = card_create(
                board=board, stage=stage, title=contact.display_name, contact=contact, actor_kind=ActorKind.AUTOMATION
            )
            return f"card {card.pk} created in {stage.name}"
        if card.stage_id != stage.pk:
            card_move(card_id=card.pk, to_stage_id=stage.pk, actor_kind=ActorKind.AUTOMATION, reason="automation")
        return f"card {card.pk} in {stage.name}"
    if kind == "assign":
        conversation = _conversation(ctx)
        member = next((m for m in members() if m.pk == action["user_id"]), None)
        if member is None:
            raise ValidationError(_("That person is no longer a member of this workspace."))
        conversation_assign(conversation=conversation, assignee=member)
        return member.email
    if kind == "assign_round_robin":
        chosen = conversation_assign_round_robin(conversation=_conversation(ctx))
        if chosen is None:
            raise ValidationError(_("Nobody is available to take the conversation."))
        return str(chosen.email)
    if kind == "cadence_enroll":
        cadence = Cadence.objects.get(pk=action["cadence_id"])
        started = cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=_contact(ctx).pk))
        return f"{cadence.name}: {'enrolled' if started else 'already enrolled'}"
    if kind == "hand_to_assistant":
        from ai.services import bot_give_back

        bot_give_back(conversation=_conversation(ctx))
        return "assistant"
    if kind == "hand_to_person":
        from ai.services import bot_handoff

        handed = bot_handoff(conversation=_conversation(ctx), reason=action["reason"])
        return "handed over" if handed else "a person already had it"
    if kind == "webhook_call":
        data = {"event": ctx.kind, "contact_id": getattr(ctx.contact, "pk", None), "payload": ctx.payload}
        ids = contributions.collect(
            contributions.RULE_WEBHOOK_CALL, endpoint_id=action["endpoint_id"], event_type="automation.rule", data=data
        )
        if not ids:
            raise ValidationError(_("That webhook endpoint does not exist or is disabled."))
        return f"delivery {ids[0]}"
    if kind == "voice_call":
        # Queued like the contact page's button: the `voice` queue places it, consent and quiet hours
        # are checked there again; the rule's key makes a re-run of the same event queue nothing more.
        try:
            call = call_queue(
                contact=_contact(ctx),
                agent=VoiceAgent.objects.filter(pk=action["agent_id"]).first(),
                idempotency_key=key,
                context={"trigger": ctx.kind},
            )
        except ValidationError as exc:
            if exc.code in ("opted_out", "no_contact_number"):
                raise ActionSkipped(" ".join(exc.messages)) from exc
            raise
        return f"call {call.pk} {call.status}"
    raise ValidationError(_("Unknown action: %(type)s.") % {"type": kind})
