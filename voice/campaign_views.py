"""Voice campaign pages: the list, create, and a campaign's page (launch, pause, resume, its calls with
outcomes). Everyone reads; managers create, pause and launch (core.roles: CAMPAIGN_*)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.roles import Action, permission_check
from voice.campaigns import (
    MAX_CONCURRENT,
    MAX_RETRIES,
    voice_campaign_launch,
    voice_campaign_pause,
    voice_campaign_resume,
    voice_campaign_save,
)
from voice.models import VoiceCampaign, VoiceCampaignStatus, VoiceNumber
from voice.selectors import voice_agents_outbound, voice_campaign_audience_choices, voice_campaign_counts

PAGE_SIZE = 50


def _int(raw: Any, default: int) -> int:
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        return default


@action_required(Action.CAMPAIGN_VIEW)
def voice_campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = list(VoiceCampaign.objects.select_related("agent")[:200])
    counts = voice_campaign_counts([c.pk for c in campaigns])
    rows = [{"campaign": c, "counts": counts.get(c.pk, {})} for c in campaigns]
    return render(request, "voice/campaigns.html", {"rows": rows})


@action_required(Action.CAMPAIGN_MANAGE)
def voice_campaign_create(request: HttpRequest) -> HttpResponse:
    values: dict[str, Any] = {"max_concurrent": 2, "retries": 1, "retry_delay_minutes": 30, "tags": []}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        agent_id = _int(request.POST.get("agent"), 0)
        values = {
            "name": request.POST.get("name", ""),
            "agent": agent_id,
            "segment": _int(request.POST.get("segment"), 0) or None,
            "tags": [_int(t, 0) for t in request.POST.getlist("tags") if _int(t, 0)],
            "max_concurrent": _int(request.POST.get("max_concurrent"), 0),
            "retries": _int(request.POST.get("retries"), -1),
            "retry_delay_minutes": _int(request.POST.get("retry_delay_minutes"), 0),
            "number": _int(request.POST.get("number"), 0) or None,
        }
        audience: dict[str, Any] = {"tags": values["tags"]}
        if values["segment"]:
            audience["segment"] = values["segment"]
        number = VoiceNumber.objects.filter(pk=values["number"]).first() if values["number"] else None
        try:
            if values["number"] and number is None:
                raise ValidationError({"number": _("Choose one of your voice numbers.")})
            campaign = voice_campaign_save(
                name=values["name"],
                agent=voice_agents_outbound().filter(pk=agent_id).first(),
                audience=audience,
                number=number,
                max_concurrent=values["max_concurrent"],
                retries=values["retries"],
                retry_delay_minutes=values["retry_delay_minutes"],
            )
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        else:
            messages.success(request, _("Campaign saved. Check the numbers and launch it."))
            return redirect("voice_campaign_detail", pk=campaign.pk)
    context = {
        "values": values,
        "errors": errors,
        "agents": voice_agents_outbound().order_by("name"),
        "choices": voice_campaign_audience_choices(),
        "numbers": VoiceNumber.objects.exclude(retell_imported_at=None).order_by("e164"),
        "max_concurrent": MAX_CONCURRENT,
        "max_retries": MAX_RETRIES,
    }
    return render(request, "voice/campaign_form.html", context, status=400 if errors else 200)


@action_required(Action.CAMPAIGN_VIEW)
def voice_campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(VoiceCampaign.objects.select_related("agent", "number"), pk=pk)
    recipients = campaign.recipients.select_related("contact", "call").order_by("id")
    page = Paginator(recipients, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "campaign": campaign,
        "counts": voice_campaign_counts([campaign.pk])[campaign.pk],
        "page": page,
        "in_progress": campaign.calls.exclude(status__in=["ended", "error", "not_connected"]).count(),
        "statuses": VoiceCampaignStatus,
    }
    return render(request, "voice/campaign.html", context)


OPERATIONS = {
    "launch": (Action.CAMPAIGN_LAUNCH, voice_campaign_launch),
    "resume": (Action.CAMPAIGN_LAUNCH, voice_campaign_resume),
    "pause": (Action.CAMPAIGN_MANAGE, voice_campaign_pause),
}


@require_POST
@action_required(Action.CAMPAIGN_VIEW)
def voice_campaign_operation(request: HttpRequest, pk: int, operation: str) -> HttpResponse:
    if operation not in OPERATIONS:
        raise Http404
    needed, run = OPERATIONS[operation]
    permission_check(request.membership, needed)  # type: ignore[attr-defined]
    campaign = get_object_or_404(VoiceCampaign, pk=pk)
    try:
        run(campaign=campaign)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        done = {"launch": _("Campaign launched."), "resume": _("Campaign resumed."), "pause": _("Campaign paused.")}
        messages.success(request, done[operation])
    return redirect("voice_campaign_detail", pk=pk)
