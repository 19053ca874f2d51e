"""Automations pages: the rules, the editor (with a dry run against a sample event), the run log.
Managers edit; everyone else reads (core.roles: RULE_VIEW / RULE_MANAGE)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from automations.actions import ACTION_TYPES, members, webhook_endpoints
from automations.conditions import CONDITION_KINDS, CONTACT_FIELDS, CONVERSATION_STATES, OPERATORS
from automations.models import Match, Rule, RuleRun, RunOutcome, Trigger
from automations.services import KIND_OF_TRIGGER, rule_delete, rule_dry_run, rule_save, rule_set_enabled, sample_payload
from campaigns.models import Cadence
from core import contributions
from core.roles import Action, role_allows
from crm.models import Contact, CustomField, Tag
from inbox.models import Channel
from kanban.models import Stage
from voice.selectors import voice_agents_outbound

FIELD_LABELS = {"name": gettext_lazy("name"), "email": gettext_lazy("email"), "phone": gettext_lazy("phone")}
OPERATOR_LABELS = {
    "equals": gettext_lazy("is"),
    "not_equals": gettext_lazy("is not"),
    "contains": gettext_lazy("contains"),
    "starts_with": gettext_lazy("starts with"),
    "is_set": gettext_lazy("is filled"),
    "is_empty": gettext_lazy("is empty"),
}
STATE_LABELS = {
    "open": pgettext_lazy("conversation status", "Open"),
    "pending": pgettext_lazy("conversation status", "Pending"),
    "resolved": pgettext_lazy("conversation status", "Resolved"),
    "assigned": gettext_lazy("assigned"),
    "unassigned": gettext_lazy("unassigned"),
}
DAY_LABELS = [
    gettext_lazy("Mon"),
    gettext_lazy("Tue"),
    gettext_lazy("Wed"),
    gettext_lazy("Thu"),
    gettext_lazy("Fri"),
    gettext_lazy("Sat"),
    gettext_lazy("Sun"),
]


def _options() -> dict[str, Any]:
    """What the editor's selects offer: this tenant's rows only."""
    return {
        "tags": [{"id": t.pk, "name": t.name} for t in Tag.objects.order_by("name")],
        "stages": [
            {"id": s.pk, "name": f"{s.board.name} > {s.name}"}
            for s in Stage.objects.select_related("board").order_by("board__name", "rank")
        ],
        "cadences": [{"id": c.pk, "name": c.name} for c in Cadence.objects.order_by("name")],
        "members": [{"id": m.pk, "name": m.email} for m in members()],
        "endpoints": [{"id": pk, "name": label} for pk, label in webhook_endpoints()],
        "voice_agents": [{"id": a.pk, "name": a.name} for a in voice_agents_outbound().order_by("name")],
        "channels": [{"id": c.pk, "name": c.name} for c in Channel.objects.order_by("name")],
        "custom_fields": [{"id": f.key, "name": f.label} for f in CustomField.objects.order_by("label")],
        "hooks": [{"id": pk, "name": name} for pk, name in contributions.collect(contributions.RULE_INBOUND_HOOKS)],
        "condition_kinds": [{"id": k, "name": str(v)} for k, v in CONDITION_KINDS.items()],
        "action_types": [{"id": k, "name": str(v)} for k, v in ACTION_TYPES.items()],
        "contact_fields": [{"id": f, "name": str(FIELD_LABELS[f])} for f in CONTACT_FIELDS],
        "operators": [{"id": op, "name": str(OPERATOR_LABELS[op])} for op in OPERATORS],
        "states": [{"id": s, "name": str(STATE_LABELS[s])} for s in CONVERSATION_STATES],
        "days": [str(d) for d in DAY_LABELS],
    }


def _form_values(request: HttpRequest) -> dict[str, Any]:
    post = request.POST
    try:
        spec = json.loads(post.get("spec") or "{}")
    except ValueError:
        spec = {}
    trigger = post.get("trigger", "")
    config: dict[str, Any] = {}
    if trigger == Trigger.KEYWORD:
        config["keywords"] = post.get("keywords", "")
    elif trigger == Trigger.TAG_ADDED:
        config["tag_id"] = post.get("tag_id") or None
    elif trigger in (Trigger.STAGE_ENTERED, Trigger.STAGE_LEFT):
        config["stage_id"] = post.get("stage_id") or None
    elif trigger == Trigger.INBOUND_WEBHOOK and post.get("hook_id"):
        config["hook_id"] = post.get("hook_id")
    try:
        per_hour = int(post.get("max_runs_per_hour") or 5)
    except ValueError:
        per_hour = 5
    return {
        "name": post.get("name", ""),
        "trigger": trigger,
        "trigger_config": config,
        "match": post.get("match", Match.ALL),
        "conditions": spec.get("conditions") if isinstance(spec.get("conditions"), list) else [],
        "actions": spec.get("actions") if isinstance(spec.get("actions"), list) else [],
        "enabled": post.get("enabled") == "on",
        "max_runs_per_hour": per_hour,
    }


def _errors(exc: ValidationError) -> list[str]:
    found = getattr(exc, "message_dict", None)
    if found is None:
        return list(exc.messages)
    return [m for messages_ in found.values() for m in messages_]


@action_required(Action.RULE_VIEW)
def rule_list(request: HttpRequest) -> HttpResponse:
    can_edit = role_allows(request.membership, Action.RULE_MANAGE)  # type: ignore[attr-defined]
    return render(request, "automations/rules.html", {"rules": Rule.objects.all(), "can_edit": can_edit})


def _editor(request: HttpRequest, rule: Rule | None) -> HttpResponse:
    can_edit = role_allows(request.membership, Action.RULE_MANAGE)  # type: ignore[attr-defined]
    errors: list[str] = []
    values: dict[str, Any] = (
        {
            "name": rule.name,
            "trigger": rule.trigger,
            "trigger_config": rule.trigger_config,
            "match": rule.match,
            "conditions": rule.conditions,
            "actions": rule.actions,
            "enabled": rule.enabled,
            "max_runs_per_hour": rule.max_runs_per_hour,
        }
        if rule
        else {
            "name": "",
            "trigger": Trigger.TAG_ADDED,
            "trigger_config": {},
            "match": Match.ALL,
            "conditions": [],
            "actions": [],
            "enabled": True,
            "max_runs_per_hour": 5,
        }
    )
    status = 200
    if request.method == "POST":
        values = _form_values(request)
        try:
            saved = rule_save(rule=rule, **values)
        except ValidationError as exc:
            errors, status = _errors(exc), 400
        else:
            messages.success(request, _("Rule saved."))
            return redirect("rule_detail", pk=saved.pk)
    context = {
        "rule": rule,
        "values": values,
        "spec": {"conditions": values["conditions"], "actions": values["actions"]},
        "options": _options(),
        "triggers": Trigger.choices,
        "matches": Match.choices,
        "errors": errors,
        "can_edit": can_edit,
        "contacts": Contact.objects.filter(erased_at=None).order_by("-updated_at")[:200],
        "runs": RuleRun.objects.filter(rule=rule)[:10] if rule else [],
    }
    return render(request, "automations/rule_form.html", context, status=status)


@action_required(Action.RULE_MANAGE)
def rule_new(request: HttpRequest) -> HttpResponse:
    return _editor(request, None)


@action_required(Action.RULE_VIEW, post=Action.RULE_MANAGE)
def rule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _editor(request, get_object_or_404(Rule, pk=pk))


@require_POST
@action_required(Action.RULE_MANAGE)
def rule_test(request: HttpRequest, pk: int) -> HttpResponse:
    """The dry run (htmx): what the rule would do on a sample event about the chosen contact."""
    rule = get_object_or_404(Rule, pk=pk)
    contact_id = request.POST.get("contact", "")
    contact = get_object_or_404(Contact, pk=int(contact_id)) if contact_id.isdigit() else None
    if contact is None:
        return render(
            request, "automations/_dry_run.html", {"problem": _("Choose a contact for the sample event.")}, status=400
        )
    extra = {k: v for k, v in (rule.trigger_config or {}).items() if k != "keywords"}
    payload = sample_payload(
        kind=KIND_OF_TRIGGER[rule.trigger], contact=contact, text=request.POST.get("text", ""), extra=extra
    )
    return render(
        request, "automations/_dry_run.html", {"result": rule_dry_run(rule=rule, payload=payload), "contact": contact}
    )


@require_POST
@action_required(Action.RULE_MANAGE)
def rule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    rule = rule_set_enabled(rule=get_object_or_404(Rule, pk=pk), enabled=request.POST.get("enabled") == "1")
    messages.success(request, _("Rule enabled.") if rule.enabled else _("Rule disabled."))
    return redirect("rule_list")


@require_POST
@action_required(Action.RULE_MANAGE)
def rule_remove(request: HttpRequest, pk: int) -> HttpResponse:
    rule_delete(rule=get_object_or_404(Rule, pk=pk))
    messages.success(request, _("Rule deleted."))
    return redirect("rule_list")


@action_required(Action.RULE_VIEW)
def run_list(request: HttpRequest) -> HttpResponse:
    runs = RuleRun.objects.select_related("rule")
    rule_id, outcome = request.GET.get("rule", ""), request.GET.get("outcome", "")
    if rule_id.isdigit():
        runs = runs.filter(rule_id=int(rule_id))
    if outcome in RunOutcome.values:
        runs = runs.filter(outcome=outcome)
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "automations/runs.html",
        {
            "page": page,
            "rules": Rule.objects.all(),
            "outcomes": RunOutcome.choices,
            "rule_id": rule_id,
            "outcome": outcome,
        },
    )
