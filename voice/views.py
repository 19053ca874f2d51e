"""Calls (list, detail, start from a contact) and voice agents and settings (managers)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.roles import Action
from crm.selectors import contacts_filter
from voice.forms import VoiceAgentForm, VoiceApiKeyForm
from voice.models import Call, CallDirection, CallStatus, VoiceAgent
from voice.selectors import calls_filter, voice_agents_active, voice_settings_current
from voice.services import (
    call_refresh,
    call_start,
    voice_agent_create,
    voice_agent_update,
    voice_api_key_set,
    voice_settings_ensure,
    voice_webhook_urls,
)

PAGE_SIZE = 25


@action_required(Action.CALL_VIEW)
def call_list(request: HttpRequest) -> HttpResponse:
    direction, status = request.GET.get("direction", ""), request.GET.get("status", "")
    page = Paginator(calls_filter(direction=direction, status=status), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "query": query.urlencode(),
        "direction": direction,
        "status": status,
        "directions": CallDirection.choices,
        "statuses": CallStatus.choices,
    }
    return render(request, "voice/calls.html", context)


@action_required(Action.CALL_VIEW)
def call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    call = get_object_or_404(Call.objects.select_related("agent", "contact", "initiated_by"), pk=pk)
    turns = [t for t in (call.transcript_object or []) if isinstance(t, dict)]
    return render(request, "voice/call.html", {"call": call, "turns": turns})


@require_POST
@action_required(Action.CALL_START)
def call_start_view(request: HttpRequest) -> HttpResponse:
    contact = get_object_or_404(contacts_filter(), pk=request.POST.get("contact") or 0)
    agent_id = request.POST.get("agent", "")
    agent = voice_agents_active().filter(pk=int(agent_id)).first() if agent_id.isdigit() else None
    try:
        call = call_start(contact=contact, agent=agent, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Calling %(name)s…") % {"name": contact.display_name})
        request.session["voice_last_call"] = call.pk
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = f"/contacts/{contact.pk}/"
        return response
    return redirect("contact_detail", pk=contact.pk)


@require_POST
@action_required(Action.CALL_VIEW)
def call_refresh_view(request: HttpRequest, pk: int) -> HttpResponse:
    call = get_object_or_404(Call, pk=pk)
    try:
        call_refresh(call=call)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("call_detail", pk=pk)


@action_required(Action.VOICEAGENT_VIEW)
def agent_list(request: HttpRequest) -> HttpResponse:
    row = voice_settings_current()
    context = {"agents": VoiceAgent.objects.all(), "has_api_key": bool(row and row.has_api_key)}
    return render(request, "voice/agents.html", context)


@action_required(Action.VOICEAGENT_MANAGE)
def agent_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    agent = get_object_or_404(VoiceAgent, pk=pk) if pk else None
    form = VoiceAgentForm(request.POST or None, instance=agent)
    row = voice_settings_current()
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            if agent is None:
                voice_agent_create(**fields)
            else:
                voice_agent_update(agent=agent, **fields)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, _("Voice agent saved and synced with Retell."))
            return redirect("voice_agent_list")
    context = {"form": form, "agent": agent, "has_api_key": bool(row and row.has_api_key)}
    return render(request, "voice/agent_form.html", context, status=400 if form.errors else 200)


@action_required(Action.VOICE_SETTINGS)
def voice_settings_view(request: HttpRequest) -> HttpResponse:
    row = voice_settings_ensure()
    form = VoiceApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        voice_api_key_set(api_key=form.cleaned_data["api_key"])
        messages.success(request, _("Retell API key saved."))
        return redirect("voice_settings")
    context = {"form": form, "has_api_key": row.has_api_key, "urls": voice_webhook_urls(row=row)}
    return render(request, "voice/settings.html", context, status=400 if form.errors else 200)
