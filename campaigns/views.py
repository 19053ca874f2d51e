"""Campaign and cadence pages: lists, editors, a live progress page, quiet hours."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from campaigns import cadences
from campaigns.audience import audience_from_file, audience_from_phones, audience_import_summary, audience_ready
from campaigns.forms import (
    CadenceForm,
    CampaignForm,
    ChannelCapForm,
    QuietHoursForm,
    steps_for_editor,
    steps_from_post,
    template_choices,
)
from campaigns.live import progress_payload
from campaigns.models import (
    Cadence,
    Campaign,
    CampaignStatus,
    ChannelDailyCap,
    ContentKind,
    Enrollment,
    EnrollmentStatus,
    QuietHours,
)
from campaigns.rails import channel_cap_save
from campaigns.selectors import (
    cadence_exits,
    cadence_status_counts,
    cadence_step_stats,
    cadences_with_counts,
    campaign_export_rows,
    campaign_preview,
    campaign_problems,
    campaign_report,
    campaign_stats,
)
from campaigns.services import (
    campaign_audience,
    campaign_cancel,
    campaign_duplicate,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_retry_failed,
    campaign_save,
    quiet_hours_save,
)
from core.roles import Action, permission_check
from crm.export import SafeCSVWriter
from crm.selectors import contacts_filter
from inbox.models import Channel


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
    form = CampaignForm(request.POST or None, request.FILES or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            audience, report = _audience_of(request, form, campaign)
            saved = campaign_save(
                campaign=campaign,
                name=form.cleaned_data["name"],
                channel=form.cleaned_data["channel"],
                audience=audience,
                audience_report=report,
                scheduled_at=form.cleaned_data["scheduled_at"],
                respect_quiet_hours=form.cleaned_data["respect_quiet_hours"],
                created_by=campaign.created_by if campaign else request.user,
                **form.content(),
                **form.rails(),
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


def _audience_of(
    request: HttpRequest, form: CampaignForm, campaign: Campaign | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    source = form.cleaned_data["audience_source"]
    if source == "list" and (form.cleaned_data.get("phones") or "").strip():
        try:
            return audience_from_phones(form.cleaned_data["phones"])
        except ValidationError as exc:
            raise ValidationError({"phones": exc.messages}) from exc
    if source == "file" and form.cleaned_data.get("file"):
        upload = form.cleaned_data["file"]
        try:
            return audience_from_file(
                file=upload, original_name=upload.name, campaign_name=form.cleaned_data["name"], user=request.user
            )
        except ValidationError as exc:
            raise ValidationError({"file": exc.messages}) from exc
    if source in ("list", "file") and campaign is not None:
        return campaign.audience, campaign.audience_report  # editing other fields: the list stays
    return form.audience(), {}


@action_required(Action.CAMPAIGN_VIEW)
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("channel", "created_by"), pk=pk)
    context: dict[str, Any] = {
        "campaign": campaign,
        "stats": campaign_stats(campaign),
        "live": progress_payload(campaign.pk),
    }
    if request.headers.get("HX-Request"):
        return render(request, "campaigns/_campaign_progress.html", context)
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        context["audience_count"] = campaign_audience(campaign).count()
        context["audience_waiting"] = audience_ready(campaign.audience)
        context["preview"] = campaign_preview(campaign)
    context["import_summary"] = audience_import_summary(campaign.audience)
    context["problems"] = campaign_problems(campaign)
    if campaign.status not in (CampaignStatus.DRAFT,):
        context["report"] = campaign_report(campaign)
    return render(request, "campaigns/campaign.html", context)


@action_required(Action.CAMPAIGN_VIEW)
def campaign_export(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Every recipient as CSV (an attachment, cells that look like formulas neutralised)."""
    campaign = get_object_or_404(Campaign, pk=pk)

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = SafeCSVWriter(Echo())

    def rows() -> Any:
        yield "\ufeff"
        yield writer.writerow(
            [
                _("Contact"),
                _("Phone"),
                _("State"),
                _("Reason"),
                _("Message status"),
                _("Error"),
                _("Sent at"),
                _("Last change"),
            ]
        )
        for r in campaign_export_rows(campaign):
            message = r.message
            yield writer.writerow(
                [
                    r.contact.display_name,
                    r.contact.phone or "",
                    r.get_status_display(),
                    r.reason,
                    message.get_status_display() if message else "",
                    message.error_code if message else "",
                    message.sent_at.isoformat() if message and message.sent_at else "",
                    r.processed_at.isoformat() if r.processed_at else "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}.csv"'
    return response


def _campaign_actions() -> dict[str, tuple[Any, str]]:
    return {
        "pause": (campaign_pause, _("Campaign paused.")),
        "resume": (campaign_resume, _("Campaign resumed.")),
        "cancel": (campaign_cancel, _("Campaign canceled.")),
    }


# the one roles table decides who may press each control (core.roles); launch, resume and retry send
CONTROL_ACTIONS = {
    "launch": Action.CAMPAIGN_LAUNCH,
    "resume": Action.CAMPAIGN_LAUNCH,
    "retry": Action.CAMPAIGN_LAUNCH,
    "pause": Action.CAMPAIGN_MANAGE,
    "cancel": Action.CAMPAIGN_MANAGE,
    "duplicate": Action.CAMPAIGN_MANAGE,
}


@require_POST
@action_required(Action.CAMPAIGN_MANAGE)
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if action not in CONTROL_ACTIONS:
        return HttpResponse(status=404)
    permission_check(request.membership, CONTROL_ACTIONS[action])  # type: ignore[attr-defined]
    actions = _campaign_actions()
    if action == "duplicate":
        copy = campaign_duplicate(campaign=campaign, created_by=request.user)
        messages.success(request, _("Campaign duplicated. Check it and launch it."))
        return redirect("campaign_detail", pk=copy.pk)
    if action == "retry":
        try:
            count = campaign_retry_failed(campaign=campaign)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if count:
                messages.success(
                    request,
                    ngettext("%(n)s failed send will be tried again.", "%(n)s failed sends will be tried again.", count)
                    % {"n": count},
                )
            else:
                messages.error(request, _("No failed send to retry."))
    elif action == "launch":
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
    channels = list(Channel.objects.order_by("name", "pk"))
    caps = dict(ChannelDailyCap.objects.values_list("channel_id", "daily_cap"))
    caps_post = request.method == "POST" and request.POST.get("form") == "caps"
    form = QuietHoursForm(
        request.POST if request.method == "POST" and not caps_post else None, instance=QuietHours.current()
    )
    cap_form = ChannelCapForm(request.POST if caps_post else None, channels=channels, caps=caps)
    if caps_post and cap_form.is_valid():
        for channel_id, cap in cap_form.caps().items():
            channel_cap_save(channel_id=channel_id, daily_cap=cap)
        messages.success(request, _("Daily caps saved."))
        return redirect("quiet_hours")
    if request.method == "POST" and not caps_post and form.is_valid():
        quiet_hours_save(**form.cleaned_data)
        messages.success(request, _("Quiet hours saved."))
        return redirect("quiet_hours")
    tenant_tz = request.tenant.timezone  # type: ignore[attr-defined]
    return render(request, "campaigns/quiet_hours.html", {"form": form, "cap_form": cap_form, "tz": tenant_tz})


# --- cadences -------------------------------------------------------------------------------------


@action_required(Action.CADENCE_VIEW)
def cadence_list(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/cadences.html", {"cadences": cadences_with_counts()})


def _step_choices() -> dict[str, Any]:
    from kanban.selectors import stages_for_choice

    return {
        "templates": template_choices(),
        "step_channels": [(c.pk, c.name, c.get_kind_display()) for c in cadences.channels_for_steps()],
        "agents": cadences.call_agent_choices(),
        "stages": [(s.pk, f"{s.board.name} > {s.name}") for s in stages_for_choice()],
    }


@action_required(Action.CADENCE_MANAGE)
def cadence_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    cadence = get_object_or_404(Cadence, pk=pk) if pk else None
    form = CadenceForm(request.POST or None, instance=cadence)
    if request.method == "POST":
        steps = steps_from_post(request.POST)
        if form.is_valid():
            try:
                saved = cadences.cadence_save(cadence=cadence, steps=steps, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, _("Cadence saved."))
                return redirect("cadence_detail", pk=saved.pk)
    elif cadence is not None:
        steps = [dict(step) for step in cadences.steps_live(cadence).values()]
    else:
        steps = [{"delay_minutes": 0, "kind": ContentKind.TEXT, "body": ""}]
    context = {
        "form": form,
        "cadence": cadence,
        "steps": steps_for_editor(steps),
        "step_errors": form.errors.get("steps") if form.errors else None,
        **_step_choices(),
    }
    return render(request, "campaigns/cadence_form.html", context, status=400 if form.errors else 200)


def _cadence_numbers(cadence: Cadence) -> dict[str, Any]:
    return {
        "step_stats": cadence_step_stats(cadence),
        "exits": cadence_exits(cadence),
        "status_counts": cadence_status_counts(cadence),
    }


@action_required(Action.CADENCE_VIEW)
def cadence_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cadence = get_object_or_404(Cadence.objects.select_related("channel", "goal_stage"), pk=pk)
    status = request.GET.get("status", "")
    enrollments = cadence.enrollments.select_related("contact", "next_step")
    if status in EnrollmentStatus.values:
        enrollments = enrollments.filter(status=status)
    page = Paginator(enrollments, 50).get_page(request.GET.get("page"))
    context = {
        "cadence": cadence,
        "page": page,
        "status": status,
        "statuses": EnrollmentStatus.choices,
        **_cadence_numbers(cadence),
    }
    return render(request, "campaigns/cadence.html", context)


@action_required(Action.CADENCE_VIEW)
def cadence_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The cadence page's numbers, polled by htmx every few seconds (enrollments per step, exits)."""
    cadence = get_object_or_404(Cadence, pk=pk)
    return render(request, "campaigns/_cadence_numbers.html", {"cadence": cadence, **_cadence_numbers(cadence)})


@require_POST
@action_required(Action.CADENCE_PAUSE)
def cadence_pause_resume(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ("pause", "resume"):
        raise Http404
    cadence = get_object_or_404(Cadence, pk=pk)
    membership = request.membership  # type: ignore[attr-defined]
    if action == "pause" and cadences.cadence_pause(cadence=cadence, actor=membership):
        messages.success(request, _("Cadence paused: nothing is sent until you resume it."))
    elif action == "resume":
        spread = cadences.cadence_resume(cadence=cadence, actor=membership)
        messages.success(
            request,
            ngettext(
                "Cadence resumed. %(n)s overdue contact goes on, spread over the next minutes.",
                "Cadence resumed. %(n)s overdue contacts go on, spread over the next minutes.",
                spread,
            )
            % {"n": spread},
        )
    return redirect("cadence_detail", pk=cadence.pk)


@require_POST
@action_required(Action.CADENCE_ENROLL)
def cadence_enroll_contact(request: HttpRequest, contact_id: int) -> HttpResponse:
    """The contact page's "start cadence"."""
    cadence = get_object_or_404(Cadence, pk=request.POST.get("cadence") or 0)
    try:
        count = cadences.cadence_enroll(
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
    if cadences.enrollment_stop(enrollment=enrollment, actor=request.membership, who=who):  # type: ignore[attr-defined]
        messages.success(request, _("Cadence stopped for this contact."))
    return _back(request, f"/cadences/{enrollment.cadence_id}/")


@require_POST
@action_required(Action.ENROLLMENT_PAUSE)
def enrollment_pause_resume(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ("pause", "resume"):
        raise Http404
    enrollment = get_object_or_404(Enrollment, pk=pk)
    membership = request.membership  # type: ignore[attr-defined]
    if action == "pause" and cadences.enrollment_pause(enrollment=enrollment, actor=membership):
        messages.success(request, _("Cadence paused for this contact."))
    elif action == "resume" and cadences.enrollment_resume(enrollment=enrollment, actor=membership):
        messages.success(request, _("Cadence resumed for this contact."))
    return _back(request, f"/cadences/{enrollment.cadence_id}/")
