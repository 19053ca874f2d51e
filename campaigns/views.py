"""Campaign and cadence pages: lists, editors, a live progress page, quiet hours."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from campaigns.forms import (
    CadenceForm,
    CampaignForm,
    QuietHoursForm,
    steps_for_editor,
    steps_from_post,
    template_choices,
)
from campaigns.models import Cadence, Campaign, CampaignStatus, ContentKind, Enrollment, EnrollmentStatus, QuietHours
from campaigns.selectors import cadences_with_counts, campaign_problems, campaign_stats
from campaigns.services import (
    cadence_enroll,
    cadence_save,
    campaign_audience,
    campaign_cancel,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_save,
    enrollments_stop,
    quiet_hours_save,
)
from core.roles import Action, permission_check
from crm.selectors import contacts_filter


def _add_errors(form: BaseForm, exc: ValidationError) -> None:
    for key, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
        field = {"template_name": "template"}.get(key, key)
        form.add_error(field if field in form.fields else None, errors)


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(fallback)


# --- campaigns ------------------------------------------------------------------------------------


@action_required(Action.CAMPAIGN_VIEW)
def campaign_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(Campaign.objects.select_related("channel"), 25).get_page(request.GET.get("page"))
    rows = [(c, campaign_stats(c)) for c in page.object_list]
    return render(request, "campaigns/campaigns.html", {"page": page, "rows": rows})


@action_required(Action.CAMPAIGN_MANAGE)
def campaign_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk) if pk else None
    if campaign and campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        messages.error(request, _("A campaign that started sending cannot be edited."))
        return redirect("campaign_detail", pk=campaign.pk)
    form = CampaignForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            saved = campaign_save(
                campaign=campaign,
                name=form.cleaned_data["name"],
                channel=form.cleaned_data["channel"],
                audience=form.audience(),
                scheduled_at=form.cleaned_data["scheduled_at"],
                respect_quiet_hours=form.cleaned_data["respect_quiet_hours"],
                created_by=campaign.created_by if campaign else request.user,
                **form.content(),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Campaign saved. Check the audience and launch it."))
            return redirect("campaign_detail", pk=saved.pk)
    return render(
        request,
        "campaigns/campaign_form.html",
        {"form": form, "campaign": campaign},
        status=400 if form.errors else 200,
    )


@action_required(Action.CAMPAIGN_VIEW)
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("channel", "created_by"), pk=pk)
    context: dict[str, Any] = {"campaign": campaign, "stats": campaign_stats(campaign)}
    if request.headers.get("HX-Request"):
        return render(request, "campaigns/_campaign_progress.html", context)
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        context["audience_count"] = campaign_audience(campaign).count()
    context["problems"] = campaign_problems(campaign)
    return render(request, "campaigns/campaign.html", context)


def _campaign_actions() -> dict[str, tuple[Any, str]]:
    return {
        "pause": (campaign_pause, _("Campaign paused.")),
        "resume": (campaign_resume, _("Campaign resumed.")),
        "cancel": (campaign_cancel, _("Campaign canceled.")),
    }


@require_POST
@action_required(Action.CAMPAIGN_MANAGE)
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if action in ("launch", "resume"):
        permission_check(request.membership, Action.CAMPAIGN_LAUNCH)  # type: ignore[attr-defined]
    actions = _campaign_actions()
    if action == "launch":
        try:
            campaign_launch(campaign=campaign)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            scheduled = campaign.status == CampaignStatus.SCHEDULED
            messages.success(request, _("Campaign scheduled.") if scheduled else _("Sending started."))
    elif action in actions:
        service, done = actions[action]
        if service(campaign=campaign):
            messages.success(request, done)
        else:
            messages.error(request, _("The campaign is %(status)s.") % {"status": campaign.get_status_display()})
    return redirect("campaign_detail", pk=pk)


@action_required(Action.CAMPAIGN_SETTINGS)
def quiet_hours(request: HttpRequest) -> HttpResponse:
    form = QuietHoursForm(request.POST or None, instance=QuietHours.current())
    if request.method == "POST" and form.is_valid():
        quiet_hours_save(**form.cleaned_data)
        messages.success(request, _("Quiet hours saved."))
        return redirect("quiet_hours")
    tenant_tz = request.tenant.timezone  # type: ignore[attr-defined]
    return render(request, "campaigns/quiet_hours.html", {"form": form, "tz": tenant_tz})


# --- cadences -------------------------------------------------------------------------------------


@action_required(Action.CADENCE_VIEW)
def cadence_list(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/cadences.html", {"cadences": cadences_with_counts()})


@action_required(Action.CADENCE_MANAGE)
def cadence_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    cadence = get_object_or_404(Cadence, pk=pk) if pk else None
    form = CadenceForm(request.POST or None, instance=cadence)
    if request.method == "POST":
        steps = steps_from_post(request.POST)
        if form.is_valid():
            try:
                saved = cadence_save(cadence=cadence, steps=steps, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, _("Cadence saved."))
                return redirect("cadence_detail", pk=saved.pk)
    elif cadence is not None:
        steps = [dict(step) for step in cadence.steps.values()]
    else:
        steps = [{"delay_minutes": 0, "kind": ContentKind.TEXT, "body": ""}]
    context = {
        "form": form,
        "cadence": cadence,
        "steps": steps_for_editor(steps),
        "templates": template_choices(),
        "step_errors": form.errors.get("steps") if form.errors else None,
    }
    return render(request, "campaigns/cadence_form.html", context, status=400 if form.errors else 200)


@action_required(Action.CADENCE_VIEW)
def cadence_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cadence = get_object_or_404(Cadence.objects.select_related("channel"), pk=pk)
    status = request.GET.get("status", "")
    enrollments = cadence.enrollments.select_related("contact")
    if status in EnrollmentStatus.values:
        enrollments = enrollments.filter(status=status)
    page = Paginator(enrollments, 50).get_page(request.GET.get("page"))
    context = {
        "cadence": cadence,
        "steps": cadence.steps.all(),
        "page": page,
        "status": status,
        "statuses": EnrollmentStatus.choices,
    }
    return render(request, "campaigns/cadence.html", context)


@require_POST
@action_required(Action.CADENCE_ENROLL)
def cadence_enroll_contact(request: HttpRequest, contact_id: int) -> HttpResponse:
    """The contact page's "start cadence"."""
    cadence = get_object_or_404(Cadence, pk=request.POST.get("cadence") or 0)
    try:
        count = cadence_enroll(
            cadence=cadence, contacts=contacts_filter().filter(pk=contact_id), enrolled_by=request.user
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if count:
            messages.success(request, _("Cadence %(name)s started.") % {"name": cadence.name})
        else:
            messages.error(request, _("This contact is already in that cadence."))
    return _back(request, f"/contacts/{contact_id}/")


@require_POST
@action_required(Action.ENROLLMENT_STOP)
def enrollment_stop(request: HttpRequest, pk: int) -> HttpResponse:
    enrollment = get_object_or_404(Enrollment, pk=pk)
    who = request.user.get_short_name() if hasattr(request.user, "get_short_name") else ""
    if enrollments_stop(enrollments=Enrollment.objects.filter(pk=pk), reason=_("Stopped by %(who)s.") % {"who": who}):
        messages.success(request, _("Cadence stopped for this contact."))
    return _back(request, f"/cadences/{enrollment.cadence_id}/")
