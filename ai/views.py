"""AI settings, assistants (list, create, edit, delete), the playground, take over / give back, the
composer's copilot and the suggested FAQ pairs."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from ai.client import AIError
from ai.forms import AISettingsForm, AssistantForm, HttpToolForm, HttpToolTestForm, LeadSettingsForm, PlaygroundForm
from ai.http_tools import http_tool_delete, http_tool_save, http_tool_secret_rotate, http_tool_test
from ai.leads import lead_settings_for, lead_settings_save, suggestion_accept, suggestion_dismiss
from ai.models import AIUsageDay, Assistant, AssistantBinding, HttpTool, LeadSuggestion
from ai.services import (
    ai_settings_current,
    ai_settings_save,
    assistant_delete,
    assistant_save,
    bot_give_back,
    bot_take_over,
    playground_answer,
)
from core.roles import Action
from inbox.selectors import conversations_visible_to

logger = logging.getLogger(__name__)
PLAYGROUND_KEY = "ai_playground"


@action_required(Action.AI_SETTINGS)
def ai_settings_view(request: HttpRequest) -> HttpResponse:
    row = ai_settings_current()
    form = AISettingsForm(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in AISettingsForm.Meta.fields}
        try:
            ai_settings_save(api_key=form.cleaned_data["api_key"], clear_key=form.cleaned_data["clear_key"], **fields)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("AI settings saved."))
            return redirect("ai_settings")
    usage = AIUsageDay.objects.all()[:30]
    context = {"form": form, "has_api_key": row.has_api_key, "usage": usage, "default_base_url": row.effective_base_url}
    return render(request, "ai/settings.html", context, status=400 if form.errors else 200)


@action_required(Action.ASSISTANT_VIEW)
def assistant_list(request: HttpRequest) -> HttpResponse:
    bindings: dict[int, list[str]] = {}
    for b in AssistantBinding.objects.select_related("channel", "stage"):
        label = b.channel.name + (f" · {b.stage.name}" if b.stage else "")
        bindings.setdefault(b.assistant_id, []).append(label)
    assistants = [(a, bindings.get(a.pk, [])) for a in Assistant.objects.all()]
    context = {"assistants": assistants, "retrieval_only": not ai_settings_current().has_api_key}
    return render(request, "ai/assistants.html", context)


@action_required(Action.ASSISTANT_MANAGE)
def assistant_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    assistant = get_object_or_404(Assistant, pk=pk) if pk else None
    form = AssistantForm(request.POST or None, instance=assistant)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in AssistantForm.Meta.fields}
        try:
            saved = assistant_save(
                assistant=assistant,
                channels=list(form.cleaned_data["channels"]),
                stages=list(form.cleaned_data["stages"]),
                sections=form.sections(),
                **fields,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Assistant saved."))
            return redirect("assistant_edit", pk=saved.pk)
    context = {"form": form, "assistant": assistant, "retrieval_only": not ai_settings_current().has_api_key}
    return render(request, "ai/assistant_form.html", context, status=400 if form.errors else 200)


@require_POST
@action_required(Action.ASSISTANT_MANAGE)
def assistant_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    assistant_delete(assistant=get_object_or_404(Assistant, pk=pk))
    messages.success(request, _("Assistant deleted."))
    return redirect("assistant_list")


@action_required(Action.ASSISTANT_MANAGE)
def assistant_playground(request: HttpRequest, pk: int) -> HttpResponse:
    """Chat with the assistant; each answer shows the passages used and the tools called (never applied)."""
    assistant = get_object_or_404(Assistant, pk=pk)
    key = f"{PLAYGROUND_KEY}:{assistant.pk}"
    turns: list[dict[str, Any]] = list(request.session.get(key, []))
    form = PlaygroundForm(request.POST or None)
    status = 200
    if request.method == "POST" and request.POST.get("reset"):
        request.session.pop(key, None)
        return redirect("assistant_playground", pk=pk)
    if request.method == "POST" and form.is_valid():
        history: list[dict[str, str]] = []
        for t in turns[-10:]:
            history += [{"role": "user", "content": t["question"]}, {"role": "assistant", "content": t["answer"]}]
        try:
            turn = playground_answer(assistant=assistant, history=history, text=form.cleaned_data["text"])
        except AIError as exc:
            form.add_error(
                None, _("The AI server did not answer (%(reason)s). Try again in a moment.") % {"reason": exc}
            )
            status = 503
        else:
            turns.append(turn.__dict__)
            request.session[key] = turns[-20:]
            return redirect("assistant_playground", pk=pk)
    elif request.method == "POST":
        status = 400
    context = {
        "assistant": assistant,
        "turns": turns,
        "form": PlaygroundForm(),
        "errors_form": form if form.errors else None,
        "retrieval_only": not ai_settings_current().has_api_key,
    }
    return render(request, "ai/playground.html", context, status=status)


def _conversation(request: HttpRequest, pk: int) -> Any:
    visible = conversations_visible_to(user=request.user, role=request.membership.role)  # type: ignore[attr-defined]
    return get_object_or_404(visible, pk=pk)


@require_POST
@action_required(Action.CONVERSATION_ASSIGN)
def conversation_take_over(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _conversation(request, pk)
    bot_take_over(conversation=conversation, user=request.user)
    messages.success(request, _("You took over: the assistant will not answer this conversation."))
    return redirect("conversation_detail", pk=pk)


@require_POST
@action_required(Action.CONVERSATION_ASSIGN)
def conversation_give_back(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _conversation(request, pk)
    bot_give_back(conversation=conversation)
    messages.success(request, _("The assistant answers this conversation again."))
    return redirect("conversation_detail", pk=pk)


@require_POST
@action_required(Action.COPILOT_USE)
def copilot_task(request: HttpRequest, pk: int, task: str) -> HttpResponse:
    """One copilot task for the composer (htmx): the result fragment; a suggestion, an improved, shortened
    or translated text goes into the draft (the script in ai/_copilot.html), a summary is shown. Nothing
    is ever sent."""
    from ai import copilot

    if task not in copilot.TASKS:
        return HttpResponse(status=404)
    conversation = _conversation(request, pk)
    actor = request.membership  # type: ignore[attr-defined]
    row = ai_settings_current()
    draft = request.POST.get("body", "")
    context: dict[str, Any] = {"task": task, "fill": task != "summarize"}
    status = 200
    try:
        result = copilot.copilot_run(
            actor=actor,
            conversation=conversation,
            row=row,
            task=task,
            draft=draft,
            target=request.POST.get("target", ""),
        )
    except copilot.CopilotUnavailable as exc:
        context["error"], status = str(exc), 400
    except AIError as exc:
        logger.warning("copilot %s in conversation %s: the model failed (%s %s)", task, pk, exc.status, exc.code)
        context["error"], status = _("The AI server did not answer. Try again in a moment."), 503
    else:
        context.update(text=result.text, mode=result.mode, sources=result.sources)
    return render(request, "ai/_copilot_result.html", context, status=status)


@action_required(Action.FAQ_REVIEW)
def faq_suggestion_list(request: HttpRequest) -> HttpResponse:
    """Suggested FAQ pairs waiting for review, each to edit and approve into a knowledge base, or dismiss."""
    from ai.models import FaqStatus, FaqSuggestion
    from knowledge.selectors import knowledge_bases_list

    pending = FaqSuggestion.objects.filter(status=FaqStatus.PENDING).select_related("conversation__contact")[:100]
    context = {
        "suggestions": pending,
        "knowledge_bases": knowledge_bases_list(),
        "retrieval_only": not ai_settings_current().has_api_key,
        "reviewed": FaqSuggestion.objects.exclude(status=FaqStatus.PENDING).select_related("decided_by")[:20],
    }
    return render(request, "ai/faq_suggestions.html", context)


@require_POST
@action_required(Action.FAQ_REVIEW)
def faq_suggestion_review(request: HttpRequest, pk: int) -> HttpResponse:
    from ai.faq import faq_approve, faq_dismiss
    from ai.models import FaqSuggestion
    from knowledge.selectors import knowledge_bases_list

    suggestion = get_object_or_404(FaqSuggestion, pk=pk)
    actor = request.membership  # type: ignore[attr-defined]
    try:
        if request.POST.get("action") == "dismiss":
            faq_dismiss(actor=actor, user=request.user, suggestion_id=suggestion.pk)
            messages.success(request, _("Suggestion dismissed."))
        else:
            kb = knowledge_bases_list().filter(pk=request.POST.get("knowledge_base") or 0).first()
            if kb is None:
                raise ValidationError(_("Pick the knowledge base this pair goes into."))
            faq_approve(
                actor=actor,
                user=request.user,
                suggestion_id=suggestion.pk,
                knowledge_base=kb,
                question=request.POST.get("question", ""),
                answer=request.POST.get("answer", ""),
            )
            messages.success(request, _("Added to %(name)s: it answers customers once indexed.") % {"name": kb.name})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("faq_suggestion_list")


# --- custom HTTP tools ---------------------------------------------------------------------------------

SECRET_KEY_SESSION = "ai_http_tool_secret"  # noqa: S105 (a session key name): the secret, shown once


@action_required(Action.ASSISTANT_MANAGE)
def http_tool_list(request: HttpRequest) -> HttpResponse:
    return render(request, "ai/http_tools.html", {"tools": HttpTool.objects.all()})


@action_required(Action.ASSISTANT_MANAGE)
def http_tool_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    tool = get_object_or_404(HttpTool, pk=pk) if pk else None
    form = HttpToolForm(request.POST or None, instance=tool)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in HttpToolForm.Meta.fields}
        try:
            saved, secret = http_tool_save(actor=request.membership, tool=tool, **fields)  # type: ignore[attr-defined]
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if secret:
                request.session[SECRET_KEY_SESSION] = secret
            messages.success(request, _("Tool saved."))
            return redirect("http_tool_edit", pk=saved.pk)
    secret = request.session.pop(SECRET_KEY_SESSION, "") if request.method == "GET" else ""
    test_result = request.session.pop("ai_http_tool_test", None) if request.method == "GET" else None
    context = {
        "form": form,
        "tool": tool,
        "secret": secret,
        "test_form": HttpToolTestForm(),
        "test_result": test_result,
        "assistants": tool.assistants.all() if tool else [],
    }
    return render(request, "ai/http_tool_form.html", context, status=400 if form.errors else 200)


@require_POST
@action_required(Action.ASSISTANT_MANAGE)
def http_tool_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Test the tool with sample arguments, rotate its secret, or delete it."""
    import json

    tool = get_object_or_404(HttpTool, pk=pk)
    action = request.POST.get("action", "")
    member = request.membership  # type: ignore[attr-defined]
    if action == "delete":
        http_tool_delete(actor=member, tool=tool)
        messages.success(request, _("Tool deleted."))
        return redirect("http_tool_list")
    if action == "rotate":
        request.session[SECRET_KEY_SESSION] = http_tool_secret_rotate(actor=member, tool=tool)
        messages.success(request, _("A new signing secret was made; the old one no longer works."))
        return redirect("http_tool_edit", pk=pk)
    form = HttpToolTestForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The arguments must be JSON."))
        return redirect("http_tool_edit", pk=pk)
    result = http_tool_test(actor=member, tool=tool, arguments=form.cleaned_data["arguments"] or {})
    request.session["ai_http_tool_test"] = json.dumps(result, ensure_ascii=False, indent=2, default=str)
    return redirect("http_tool_edit", pk=pk)


# --- AI lead progression ---------------------------------------------------------------------------------


@action_required(Action.PIPELINE_MANAGE)
def lead_settings_view(request: HttpRequest) -> HttpResponse:
    """Per board (and the workspace default): classify on/off, auto-move, threshold, won/lost allowed."""
    from kanban.models import Board

    boards: list[Any] = [None, *Board.objects.order_by("name")]
    if request.method == "POST":
        board_id = request.POST.get("board", "")
        board = get_object_or_404(Board, pk=int(board_id)) if board_id.isdigit() else None
        form = LeadSettingsForm(request.POST, prefix=str(board_id or "default"))
        if form.is_valid():
            try:
                lead_settings_save(actor=request.membership, board=board, **form.cleaned_data)  # type: ignore[attr-defined]
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Lead progression settings saved."))
        else:
            messages.error(request, form.errors.as_text())
        return redirect("lead_settings")
    rows = []
    for board in boards:
        row = lead_settings_for(board.pk if board else None)
        initial = {f: getattr(row, f) for f in LeadSettingsForm.Meta.fields}
        rows.append(
            {"board": board, "form": LeadSettingsForm(initial=initial, prefix=str(board.pk if board else "default"))}
        )
    return render(request, "ai/lead_settings.html", {"rows": rows})


@require_POST
@action_required(Action.CARD_EDIT)
def lead_suggestion_decide(request: HttpRequest, pk: int) -> HttpResponse:
    suggestion = get_object_or_404(LeadSuggestion, pk=pk)
    decide = suggestion_accept if request.POST.get("decision") == "accept" else suggestion_dismiss
    try:
        suggestion = decide(suggestion_id=suggestion.pk, user=request.user, actor=request.membership)  # type: ignore[attr-defined]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, _("Suggestion accepted.") if suggestion.status == "accepted" else _("Suggestion dismissed.")
        )
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    if suggestion.card_id:
        return redirect("card_detail", pk=suggestion.card_id)
    return redirect("board_list")
