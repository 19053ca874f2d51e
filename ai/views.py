"""AI settings, assistants (list, create, edit, delete), the playground, and take over / give back."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from ai.client import AIError
from ai.forms import AISettingsForm, AssistantForm, PlaygroundForm
from ai.models import AIUsageDay, Assistant, AssistantBinding
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
