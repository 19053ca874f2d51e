"""Calls (list, detail, start from a contact) and voice agents and settings (managers)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.roles import Action
from crm.selectors import contacts_filter
from voice.forms import VoiceAgentForm, VoiceApiKeyForm, VoiceFallbackForm, VoiceTwilioForm
from voice.models import AgentStatus, Call, CallDirection, CallStatus, VoiceAgent, VoiceNumber
from voice.numbers import (
    COUNTRIES,
    twilio_numbers_list,
    twilio_numbers_search,
    voice_number_adopt,
    voice_number_assign,
    voice_number_buy,
    voice_number_caller_id_check,
    voice_number_caller_id_verify,
    voice_number_preflight,
    voice_number_retell_import,
    voice_number_test_call,
    voice_number_webhooks_set,
    voice_numbers_inbound_recent,
)
from voice.outbound import call_queue
from voice.selectors import calls_filter, voice_agents_active, voice_settings_current
from voice.services import (
    FALLBACK_FIELDS,
    call_refresh,
    voice_agent_create,
    voice_agent_drift,
    voice_agent_sync,
    voice_agent_update,
    voice_api_key_set,
    voice_fallback_set,
    voice_settings_ensure,
    voice_twilio_set,
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
        call = call_queue(contact=contact, agent=agent, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Calling %(name)s…") % {"name": contact.display_name})
        request.session["voice_last_call"] = call.pk
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}) or not target.startswith("/"):
        target = f"/contacts/{contact.pk}/"
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)


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
            saved = voice_agent_create(**fields) if agent is None else voice_agent_update(agent=agent, **fields)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            if saved.status == AgentStatus.ERROR:
                messages.warning(request, _("Saved, but not published: %(reason)s") % {"reason": saved.status_reason})
                return redirect("voice_agent_edit", pk=saved.pk)
            messages.success(request, _("Voice agent saved and published on Retell."))
            return redirect("voice_agent_list")
    drift, drift_error = [], ""
    if agent is not None and request.method == "GET":
        try:
            drift = voice_agent_drift(agent=agent)
        except ValidationError as exc:
            drift_error = " ".join(exc.messages)
    context = {
        "form": form,
        "agent": agent,
        "has_api_key": bool(row and row.has_api_key),
        "drift": drift,
        "drift_error": drift_error,
    }
    return render(request, "voice/agent_form.html", context, status=400 if form.errors else 200)


@require_POST
@action_required(Action.VOICEAGENT_MANAGE)
def agent_sync_view(request: HttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(VoiceAgent, pk=pk)
    try:
        voice_agent_sync(agent=agent)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Agent synced and published on Retell."))
    return redirect("voice_agent_edit", pk=pk)


@action_required(Action.VOICE_SETTINGS)
def voice_settings_view(request: HttpRequest) -> HttpResponse:
    row = voice_settings_ensure()
    which = request.POST.get("form") or ("api_key" if "api_key" in request.POST else "")
    key_form = VoiceApiKeyForm(request.POST if which == "api_key" else None)
    twilio_form = VoiceTwilioForm(
        request.POST if which == "twilio" else None,
        initial={"twilio_account_sid": row.twilio_account_sid, "sip_termination_uri": row.sip_termination_uri},
    )
    fallback_form = VoiceFallbackForm(request.POST if which == "fallback" else None, instance=row)
    if which == "api_key" and key_form.is_valid():
        voice_api_key_set(api_key=key_form.cleaned_data["api_key"])
        messages.success(request, _("Retell API key saved."))
        return redirect("voice_settings")
    if which == "twilio" and twilio_form.is_valid():
        voice_twilio_set(
            account_sid=twilio_form.cleaned_data["twilio_account_sid"],
            auth_token=twilio_form.cleaned_data["twilio_auth_token"],
            sip_termination_uri=twilio_form.cleaned_data["sip_termination_uri"],
        )
        messages.success(request, _("Twilio voice account saved."))
        return redirect("voice_settings")
    if which == "fallback" and fallback_form.is_valid():
        try:
            voice_fallback_set(**{name: fallback_form.cleaned_data[name] for name in FALLBACK_FIELDS})
        except ValidationError as exc:
            fallback_form.add_error(None, exc.messages)
        else:
            messages.success(request, _("What callers hear when no agent answers is saved."))
            return redirect("voice_settings")
    row.refresh_from_db()
    errors = key_form.errors or twilio_form.errors or fallback_form.errors
    context = {
        "form": key_form,
        "twilio_form": twilio_form,
        "fallback_form": fallback_form,
        "has_api_key": row.has_api_key,
        "has_twilio": row.has_twilio,
        "urls": voice_webhook_urls(row=row),
    }
    return render(request, "voice/settings.html", context, status=400 if errors else 200)


# --- numbers ------------------------------------------------------------------------------------


@action_required(Action.VOICENUMBER_VIEW)
def number_list(request: HttpRequest) -> HttpResponse:
    row = voice_settings_current()
    ours = list(VoiceNumber.objects.select_related("agent"))
    known = {n.e164 for n in ours}
    remote, remote_error, found = [], "", []
    if row is not None and row.has_twilio:
        try:
            remote = [n for n in twilio_numbers_list() if n.phone_number not in known]
        except ValidationError as exc:
            remote_error = " ".join(exc.messages)
    country = request.GET.get("country", "BR") if request.GET.get("country") in COUNTRIES else "BR"
    if "search" in request.GET and row is not None and row.has_twilio:
        try:
            found = twilio_numbers_search(
                country=country,
                contains="".join(c for c in request.GET.get("contains", "") if c.isdigit())[:10],
                area_code="".join(c for c in request.GET.get("area_code", "") if c.isdigit())[:3],
            )
        except ValidationError as exc:
            remote_error = " ".join(exc.messages)
    context = {
        "numbers": ours,
        "remote": remote,
        "remote_error": remote_error,
        "found": found,
        "searched": "search" in request.GET,
        "countries": COUNTRIES,
        "country": country,
        "has_twilio": bool(row and row.has_twilio),
    }
    return render(request, "voice/numbers.html", context)


@require_POST
@action_required(Action.VOICENUMBER_MANAGE)
def number_buy_view(request: HttpRequest) -> HttpResponse:
    phone = request.POST.get("phone_number", "")
    try:
        if request.POST.get("adopt"):
            number = voice_number_adopt(phone_number=phone)
        else:
            number = voice_number_buy(phone_number=phone)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("voice_number_list")
    messages.success(request, _("Number %(number)s is set up for calls.") % {"number": number.e164})
    return redirect("voice_number_detail", pk=number.pk)


@action_required(Action.VOICENUMBER_VIEW)
def number_detail(request: HttpRequest, pk: int) -> HttpResponse:
    number = get_object_or_404(VoiceNumber.objects.select_related("agent"), pk=pk)
    context = {
        "number": number,
        "checks": voice_number_preflight(number=number),
        "agents": VoiceAgent.objects.filter(is_active=True).exclude(direction="outbound"),
        "calls": voice_numbers_inbound_recent(number=number),
    }
    return render(request, "voice/number.html", context)


NUMBER_OPERATIONS = {
    "webhooks": (voice_number_webhooks_set, gettext_lazy("Twilio now sends this number's calls here.")),
    "import": (voice_number_retell_import, gettext_lazy("The number is imported into Retell.")),
    "caller-id": (voice_number_caller_id_verify, gettext_lazy("Twilio is calling the number to verify it.")),
    "caller-id-check": (voice_number_caller_id_check, gettext_lazy("Caller ID checked.")),
    "test-call": (voice_number_test_call, gettext_lazy("Test call placed: check again in a few seconds.")),
}


@require_POST
@action_required(Action.VOICENUMBER_MANAGE)
def number_operation(request: HttpRequest, pk: int, operation: str) -> HttpResponse:
    number = get_object_or_404(VoiceNumber, pk=pk)
    try:
        if operation == "assign":
            agent_id = request.POST.get("agent", "")
            agent = VoiceAgent.objects.filter(pk=int(agent_id)).first() if agent_id.isdigit() else None
            voice_number_assign(number=number, agent=agent)
            messages.success(request, _("Inbound agent saved."))
        elif operation in NUMBER_OPERATIONS:
            run, done = NUMBER_OPERATIONS[operation]
            run(number=number)
            messages.success(request, str(done))
        else:
            raise Http404
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("voice_number_detail", pk=pk)
