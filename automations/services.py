"""Automation rules: saving them, recording the events they listen to, running them on a worker with
the loop guard, and the dry run."""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from automations.actions import ActionSkipped, action_clean, action_describe, action_run
from automations.conditions import EventContext, condition_check, condition_clean, fold
from automations.models import Match, Rule, RuleEvent, RuleEventStatus, RuleRun, RunOutcome, Trigger
from core import events
from core.redis import redis_client
from crm.models import Contact, Tag
from inbox.models import Conversation
from kanban.models import Stage

logger = logging.getLogger(__name__)

MAX_DEPTH = 3  # rule runs that may lead to one another before the chain is stopped
BATCH = 100
LEASE = datetime.timedelta(seconds=120)
RUN_FLAG = "automations:run:{}"
# The event kind each trigger reads (keyword rules read received messages).
KIND_OF_TRIGGER = {t.value: t.value for t in Trigger} | {Trigger.KEYWORD.value: Trigger.MESSAGE_RECEIVED.value}


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


# --- saving rules ---------------------------------------------------------------------------------


def _trigger_config_clean(trigger: str, raw: dict[str, Any]) -> dict[str, Any]:
    if trigger == Trigger.KEYWORD:
        words = raw.get("keywords") or []
        if isinstance(words, str):
            words = words.split(",")
        words = [w.strip() for w in words if str(w).strip()]
        if not words:
            raise ValidationError({"trigger_config": _("Give at least one keyword.")})
        return {"keywords": [str(w)[:60] for w in words][:20]}
    if trigger == Trigger.TAG_ADDED:
        tag_id = raw.get("tag_id")
        if not tag_id or not Tag.objects.filter(pk=int(tag_id)).exists():
            raise ValidationError({"trigger_config": _("Choose the tag.")})
        return {"tag_id": int(tag_id)}
    if trigger in (Trigger.STAGE_ENTERED, Trigger.STAGE_LEFT):
        stage_id = raw.get("stage_id")
        if not stage_id or not Stage.objects.filter(pk=int(stage_id)).exists():
            raise ValidationError({"trigger_config": _("Choose the stage.")})
        return {"stage_id": int(stage_id)}
    if trigger == Trigger.INBOUND_WEBHOOK and raw.get("hook_id"):
        return {"hook_id": int(raw["hook_id"])}
    return {}


def rules_changed() -> None:
    key = f"{_schema()}:automations:kinds"
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


def rule_save(
    *,
    rule: Rule | None = None,
    name: str,
    trigger: str,
    trigger_config: dict[str, Any] | None = None,
    match: str = Match.ALL,
    conditions: list[dict[str, Any]] | None = None,
    actions: list[dict[str, Any]],
    enabled: bool = True,
    max_runs_per_hour: int = 5,
) -> Rule:
    """Create or edit a rule. Every condition and action is checked (ids must name this tenant's rows);
    a ValidationError keyed by field says what to fix."""
    if trigger not in Trigger.values:
        raise ValidationError({"trigger": _("Choose when the rule runs.")})
    if match not in Match.values:
        raise ValidationError({"match": _("Choose all or any.")})
    errors: dict[str, list[str]] = {}
    clean_conditions, clean_actions = [], []
    for i, raw in enumerate(conditions or [], start=1):
        try:
            clean_conditions.append(condition_clean(raw))
        except ValidationError as exc:
            errors.setdefault("conditions", []).append(
                _("Condition %(n)s: %(problem)s") % {"n": i, "problem": " ".join(exc.messages)}
            )
    for i, raw in enumerate(actions or [], start=1):
        try:
            clean_actions.append(action_clean(raw))
        except ValidationError as exc:
            errors.setdefault("actions", []).append(
                _("Action %(n)s: %(problem)s") % {"n": i, "problem": " ".join(exc.messages)}
            )
    if not actions:
        errors.setdefault("actions", []).append(_("Add at least one action."))
    try:
        config = _trigger_config_clean(trigger, trigger_config or {})
    except (ValidationError, ValueError) as exc:
        errors.setdefault("trigger_config", []).extend(getattr(exc, "messages", [_("Choose the trigger's options.")]))
        config = {}
    if errors:
        raise ValidationError(errors)
    rule = rule or Rule()
    rule.name, rule.trigger, rule.trigger_config, rule.match = name.strip()[:120], trigger, config, match
    rule.conditions, rule.actions, rule.enabled = clean_conditions, clean_actions, enabled
    rule.max_runs_per_hour = max(1, min(int(max_runs_per_hour or 5), 1000))
    rule.full_clean()
    rule.save()
    rules_changed()
    return rule


def rule_set_enabled(*, rule: Rule, enabled: bool) -> Rule:
    rule.enabled = enabled
    rule.save(update_fields=["enabled", "updated_at"])
    rules_changed()
    return rule


def rule_delete(*, rule: Rule) -> None:
    rule.delete()
    rules_changed()


# --- events in --------------------------------------------------------------------------------------


def kinds_listened() -> set[str]:
    """The event kinds some enabled rule of this tenant reads, cached (dropped when a rule changes): an
    event no rule wants costs one cache read."""
    key = f"{_schema()}:automations:kinds"
    found = cache.get(key)
    if found is None:
        found = sorted(
            {KIND_OF_TRIGGER[t] for t in Rule.objects.filter(enabled=True).values_list("trigger", flat=True)}
        )
        cache.set(key, found, 300)
    return set(found)


def _contact_id_of(payload: dict[str, Any]) -> int | None:
    if payload.get("contact_id"):
        return int(payload["contact_id"])
    if payload.get("conversation_id"):
        found = Conversation.objects.filter(pk=payload["conversation_id"]).values_list("contact_id", flat=True).first()
        return int(found) if found else None
    return None


def rule_event_record(*, kind: str, payload: dict[str, Any], cause: dict[str, Any] | None = None) -> RuleEvent | None:
    """Keep an event for the rules (when some enabled rule reads its kind) and have a worker run them.
    `cause` is the event's metadata: the depth and rules of the chain that led to it."""
    if kind not in kinds_listened():
        return None
    cause = cause or {}
    event = RuleEvent.objects.create(
        kind=kind,
        payload=payload,
        contact_id=_contact_id_of(payload),
        depth=int(cause.get("depth", 0)),
        chain=[int(r) for r in cause.get("rules", [])],
    )
    rules_kick()
    return event


def rules_kick() -> None:
    """After the commit: have one runner work through this tenant's pending rule events (queue `hooks`)."""
    schema = _schema()

    def start() -> None:
        from config.celery import app

        if redis_client().set(RUN_FLAG.format(schema), "1", nx=True, ex=int(LEASE.total_seconds())):
            app.send_task("automations.run", queue="hooks", headers={"_schema_name": schema})

    transaction.on_commit(start)


# --- running rules -----------------------------------------------------------------------------------


def _context(kind: str, payload: dict[str, Any], contact_id: int | None) -> EventContext:
    contact = Contact.objects.filter(pk=contact_id).first() if contact_id else None
    conversation = None
    if payload.get("conversation_id"):
        conversation = Conversation.objects.select_related("channel").filter(pk=payload["conversation_id"]).first()
    elif contact is not None:  # the contact's latest conversation
        conversation = (
            Conversation.objects.select_related("channel")
            .filter(contact=contact)
            .order_by("-last_message_at", "-pk")
            .first()
        )
    return EventContext(kind=kind, payload=payload, contact=contact, conversation=conversation, now=timezone.now())


def trigger_fits(rule: Rule, ctx: EventContext) -> bool:
    """Whether the event is the one the rule's WHEN names (this tag, this stage, this keyword...)."""
    config, payload = rule.trigger_config or {}, ctx.payload
    if rule.trigger == Trigger.KEYWORD:
        text = fold(payload.get("body", ""))
        tokens = set(re.findall(r"\w+", text))
        words = [fold(w) for w in config.get("keywords", [])]
        return any(w and (w in tokens or (" " in w and w in text)) for w in words)
    if rule.trigger == Trigger.TAG_ADDED:
        return payload.get("tag_id") == config.get("tag_id")
    if rule.trigger in (Trigger.STAGE_ENTERED, Trigger.STAGE_LEFT):
        return payload.get("stage_id") == config.get("stage_id")
    if rule.trigger == Trigger.INBOUND_WEBHOOK and config.get("hook_id"):
        return payload.get("hook_id") == config["hook_id"]
    return True


def conditions_check(rule: Rule, ctx: EventContext) -> tuple[bool, list[dict[str, Any]]]:
    results = [{**c, "ok": condition_check(c, ctx)} for c in rule.conditions]
    if not results:
        return True, results
    oks = [r["ok"] for r in results]
    return (all(oks) if rule.match == Match.ALL else any(oks)), results


def _guard(rule: Rule, event: RuleEvent) -> tuple[str, str] | None:
    """The loop guard: a rule already in the chain that led here, a chain too deep, or a rule that ran
    too often for this contact in the last hour, is stopped (and the stop logged)."""
    if rule.pk in event.chain:
        return RunOutcome.STOPPED_LOOP, _("This rule is already in the chain of rules that caused the event.")
    if event.depth >= MAX_DEPTH:
        return RunOutcome.STOPPED_DEPTH, _("%(n)s rules led to one another: the chain stops here.") % {"n": event.depth}
    if event.contact_id is not None:
        since = timezone.now() - datetime.timedelta(hours=1)
        ran = RuleRun.objects.filter(
            rule=rule,
            contact_id=event.contact_id,
            created_at__gte=since,
            outcome__in=[RunOutcome.DONE, RunOutcome.PARTIAL, RunOutcome.FAILED],
        ).count()
        if ran >= rule.max_runs_per_hour:
            return RunOutcome.STOPPED_RATE, _("Already ran %(n)s times for this contact in the last hour.") % {"n": ran}
    return None


def _actions_do(rule: Rule, event: RuleEvent, ctx: EventContext) -> tuple[str, list[dict[str, Any]], str]:
    done: list[dict[str, Any]] = []
    failures = 0
    with events.caused_by(depth=event.depth + 1, rules=[*event.chain, rule.pk]):
        for index, action in enumerate(rule.actions):
            entry: dict[str, Any] = {"type": action["type"]}
            try:
                with transaction.atomic():
                    entry.update(ok=True, detail=action_run(action, ctx, key=f"rule:{rule.pk}:{event.pk}:{index}"))
            except ActionSkipped as exc:
                entry.update(ok=True, skipped=True, detail=str(exc))
            except ValidationError as exc:
                failures += 1
                entry.update(ok=False, detail=" ".join(exc.messages)[:300])
            except Exception:
                failures += 1
                logger.exception("rule %s action %s failed in %s", rule.pk, action["type"], _schema())
                entry.update(ok=False, detail=_("Internal error: the team was notified."))
            done.append(entry)
    if failures == 0:
        return RunOutcome.DONE, done, ""
    outcome = RunOutcome.FAILED if failures == len(done) else RunOutcome.PARTIAL
    return outcome, done, _("%(n)s of %(total)s actions failed.") % {"n": failures, "total": len(done)}


def rule_apply(rule: Rule, event: RuleEvent) -> RuleRun | None:
    """One rule on one event: None when the event is not the rule's (another tag, stage or keyword), or
    when this rule already ran on it; else the logged run."""
    ctx = _context(event.kind, event.payload, event.contact_id)
    if not trigger_fits(rule, ctx):
        return None
    if RuleRun.objects.filter(rule=rule, event=event).exists():
        return None
    matched, results = conditions_check(rule, ctx)
    run = RuleRun(rule=rule, event=event, kind=event.kind, contact_id=event.contact_id, conditions=results)
    run.depth = event.depth
    if not matched:
        run.outcome = RunOutcome.NOT_MATCHED
    elif (stop := _guard(rule, event)) is not None:
        run.outcome, run.error = stop
        logger.warning("rule %s stopped on event %s in %s: %s", rule.pk, event.pk, _schema(), run.outcome)
    else:
        run.outcome, run.actions_done, run.error = _actions_do(rule, event, ctx)
    run.save()
    return run


def _claim(limit: int) -> list[RuleEvent]:
    now = timezone.now()
    with transaction.atomic():
        found = list(
            RuleEvent.objects.select_for_update(skip_locked=True)
            .filter(status=RuleEventStatus.PENDING)
            .exclude(claimed_until__gt=now)
            .order_by("id")[:limit]
        )
        RuleEvent.objects.filter(pk__in=[e.pk for e in found]).update(claimed_until=now + LEASE)
    return found


def rule_events_process(*, limit: int = BATCH) -> int:
    """Run the enabled rules on up to `limit` pending events, oldest first. Returns how many events were
    done. A second pass over an event runs no rule twice (one run per rule and event)."""
    claimed = _claim(limit)
    if not claimed:
        return 0
    by_kind: dict[str, list[Rule]] = {}
    for rule in Rule.objects.filter(enabled=True).order_by("id"):
        by_kind.setdefault(KIND_OF_TRIGGER[rule.trigger], []).append(rule)
    for event in claimed:
        for rule in by_kind.get(event.kind, []):
            try:
                rule_apply(rule, event)
            except Exception:
                logger.exception("rule %s on event %s failed in %s", rule.pk, event.pk, _schema())
        RuleEvent.objects.filter(pk=event.pk).update(status=RuleEventStatus.DONE, processed_at=timezone.now())
    return len(claimed)


def run(schema: str, *, time_budget_s: float = 50.0) -> int:
    """The runner task's body: work through the pending events, let go of the flag, look once more."""
    import time

    deadline, total = time.monotonic() + time_budget_s, 0
    while time.monotonic() < deadline:
        done = rule_events_process()
        total += done
        if done == 0:
            break
    redis_client().delete(RUN_FLAG.format(schema))
    return total + rule_events_process()


# --- dry run -----------------------------------------------------------------------------------------


@dataclass
class DryRun:
    fits: bool
    matched: bool
    conditions: list[dict[str, Any]]
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sample_payload(
    *, kind: str, contact: Contact, text: str = "", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A sample event about `contact` (the editor's test run): the payload the domain would announce."""
    conversation = Conversation.objects.filter(contact=contact).order_by("-last_message_at", "-pk").first()
    payload: dict[str, Any] = {"contact_id": contact.pk}
    if conversation is not None:
        payload["conversation_id"] = conversation.pk
    if kind == Trigger.MESSAGE_RECEIVED:
        payload.update(direction="in", type="text", body=text)
    payload.update(extra or {})
    return payload


def rule_dry_run(*, rule: Rule, payload: dict[str, Any]) -> DryRun:
    """What the rule would do on this event, changing nothing: whether the event is the rule's, each
    condition's result, and the actions that would run."""
    kind = KIND_OF_TRIGGER[rule.trigger]
    ctx = _context(kind, payload, _contact_id_of(payload))
    fits = trigger_fits(rule, ctx)
    matched, results = conditions_check(rule, ctx)
    result = DryRun(fits=fits, matched=fits and matched, conditions=results)
    if not fits:
        result.notes.append(_("This event is not the one the rule starts from (another tag, stage or keyword)."))
    if result.matched:
        result.actions = [action_describe(a) for a in rule.actions]
        if ctx.conversation is None and any(
            a["type"] in ("reply", "assign", "assign_round_robin") for a in rule.actions
        ):
            result.notes.append(_("This contact has no conversation: actions on a conversation would be skipped."))
    if not rule.enabled:
        result.notes.append(_("The rule is disabled: real events do not run it."))
    return result
