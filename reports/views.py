"""The scheduled reports settings page (managers): thin, over reports.services."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.roles import Action
from reports.forms import ReportSettingsForm
from reports.selectors import report_runs, report_settings
from reports.services import report_settings_save, report_test_request


@action_required(Action.SETTINGS_MANAGE)
def report_settings_page(request: HttpRequest) -> HttpResponse:
    current = report_settings()
    initial = {
        "frequency": current.frequency,
        "weekday": current.weekday,
        "hour": current.hour,
        "email_enabled": current.email_enabled,
        "whatsapp_number": current.whatsapp_number,
        "whatsapp_channel": current.whatsapp_channel_id,
        "whatsapp_template": current.whatsapp_template_id,
    }
    form = ReportSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            report_settings_save(actor=request.membership, **form.cleaned_data)  # type: ignore[attr-defined]
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Report settings saved."))
            return redirect("report_settings")
    context = {"form": form, "runs": report_runs(), "tenant": request.tenant}  # type: ignore[attr-defined]
    return render(request, "reports/settings.html", context)


@require_POST
@action_required(Action.SETTINGS_MANAGE)
def report_test(request: HttpRequest) -> HttpResponse:
    try:
        report_test_request(actor=request.membership)  # type: ignore[attr-defined]
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, _("A test report is on its way. It appears in the list below when sent."))
    return redirect("report_settings")
