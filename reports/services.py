"""Scheduled reports: saving the settings, and sending a period's summary by email to the owners and as a
short WhatsApp text through one of the tenant's channels (the normal outbound path, so it shows in the
inbox). Each scheduled (period, medium) is claimed by inserting its ReportRun first: a second tick, a
retried task or two workers at once find the row and send nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django_tenants.utils import get_tenant_model, schema_context

from accounts.selectors import members_of
from campaigns.services import template_preview_fill
from core.roles import OWNER, Action, HasRole, permission_check
from core.tasks import send_on_commit
from crm.phones import phone_normalize
from crm.services import contact_get_or_create
from inbox.models import Channel, ChannelKind, MessageType
from inbox.services import conversation_open, message_send, window_open
from reports.models import Frequency, Medium, ReportRun, ReportSettings, RunStatus
from reports.selectors import (
    WHATSAPP_KINDS,
    Period,
    report_due,
    report_numbers,
    report_period,
    report_settings,
)
from tenants.models import Tenant
from tenants.selectors import tenant_current
from tenants.services import tenant_url
from whatsapp.models import MessageTemplate, TemplateStatus

TEMPLATE_SLOTS = 2  # {{1}} the period, {{2}} the numbers on one line

logger = logging.getLogger(__name__)


def report_settings_save(
    *,
    actor: HasRole | None,
    frequency: str,
    weekday: int,
    hour: int,
    email_enabled: bool,
    whatsapp_number: str,
    whatsapp_channel: Channel | None,
    whatsapp_template: MessageTemplate | None = None,
) -> ReportSettings:
    """Save the tenant's report settings. Raises ValidationError (by field) with a message the user can
    act on: the number must be a valid phone (kept as E.164), the channel one of this tenant's WhatsApp
    channels, and a report that is on must go somewhere."""
    permission_check(actor, Action.SETTINGS_MANAGE)
    errors: dict[str, str] = {}
    if frequency not in Frequency.values:
        errors["frequency"] = _("Choose off, daily or weekly.")
    if not 0 <= int(weekday) <= 6:
        errors["weekday"] = _("Choose a day of the week.")
    if not 0 <= int(hour) <= 23:
        errors["hour"] = _("The hour is between 0 and 23.")
    number = whatsapp_number.strip()
    if number:
        try:
            number = phone_normalize(number)
        except ValidationError as exc:
            errors["whatsapp_number"] = exc.messages[0]
        if whatsapp_channel is None:
            errors["whatsapp_channel"] = _("Choose the WhatsApp channel the report is sent from.")
    if whatsapp_channel is not None:
        if not Channel.objects.filter(pk=whatsapp_channel.pk, kind__in=WHATSAPP_KINDS).exists():
            errors["whatsapp_channel"] = _("Choose one of this workspace's WhatsApp channels.")
        elif not number:
            errors["whatsapp_number"] = _("Enter the WhatsApp number the report is sent to.")
    if whatsapp_template is not None and "whatsapp_channel" not in errors:
        problem = _template_problem(whatsapp_template, whatsapp_channel)
        if problem:
            errors["whatsapp_template"] = problem
    if frequency != Frequency.OFF and not email_enabled and not number:
        errors["email_enabled"] = _("Choose where the report goes: email, a WhatsApp number or both.")
    if errors:
        raise ValidationError(errors)
    settings = report_settings()
    settings.frequency = frequency
    settings.weekday = int(weekday)
    settings.hour = int(hour)
    settings.email_enabled = email_enabled
    settings.whatsapp_number = number
    settings.whatsapp_channel = whatsapp_channel if number else None
    settings.whatsapp_template = whatsapp_template if number else None
    settings.save()
    return settings


def _template_problem(template: MessageTemplate, channel: Channel | None) -> str:
    """Why this template cannot carry the report from this channel ("" when it can)."""
    if channel is None or channel.kind != ChannelKind.WHATSAPP_CLOUD:
        return _("Only a WhatsApp Cloud API number sends templates. Choose that channel or no template.")
    if template.waba_id != channel.waba_id or template.status != TemplateStatus.APPROVED:
        return _("Choose a template approved by Meta for this channel's WhatsApp Business Account.")
    if template.body_variable_count > TEMPLATE_SLOTS:
        return _(
            "This template has %(count)s variables; the report fills two: {{1}} the period and {{2}} the numbers."
        ) % {"count": template.body_variable_count}
    return ""


def _claim(period: Period, medium: str, is_test: bool) -> ReportRun | None:
    """The run row, inserted before anything is sent; None when this period's report already went, or is
    being sent right now. A claim still "sending" after ReportRun.STALE_MINUTES was left by a worker that
    died: it is taken over (up to ReportRun.MAX_ATTEMPTS times)."""
    try:
        with transaction.atomic():
            return ReportRun.objects.create(
                frequency=period.frequency,
                period_start=period.start,
                period_end=period.end,
                medium=medium,
                is_test=is_test,
            )
    except IntegrityError:
        pass
    now = timezone.now()
    stale = ReportRun.objects.filter(
        frequency=period.frequency,
        period_start=period.start,
        medium=medium,
        is_test=False,
        status=RunStatus.SENDING,
        claimed_at__lt=now - timedelta(minutes=ReportRun.STALE_MINUTES),
        attempts__lt=ReportRun.MAX_ATTEMPTS,
    )
    with transaction.atomic():
        run = stale.select_for_update(skip_locked=True).first()
        if run is None:
            return None
        ReportRun.objects.filter(pk=run.pk).update(claimed_at=now, attempts=F("attempts") + 1)
    run.refresh_from_db()
    logger.warning("report %s (%s): taken over after a worker left it sending", run.pk, run.medium)
    return run


def _finish(run: ReportRun, status: str, detail: str = "", message_id: int | None = None) -> ReportRun:
    run.status, run.detail, run.message_id, run.finished_at = status, detail[:300], message_id, timezone.now()
    run.save(update_fields=["status", "detail", "message_id", "finished_at"])
    if status != RunStatus.SENT:
        logger.warning("report %s (%s) %s: %s", run.pk, run.medium, status, detail)
    return run


def report_context(*, tenant: Tenant, period: Period) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "period": period,
        "weekly": period.frequency == Frequency.WEEKLY,
        "n": report_numbers(period, tz=tenant.timezone),
        "dashboard_link": tenant_url(tenant, f"/?start={period.start.isoformat()}&end={period.end.isoformat()}"),
        "settings_link": tenant_url(tenant, "/settings/reports/"),
    }


def report_email_render(context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) in the active language."""
    tenant = context["tenant"]
    if context["weekly"]:
        subject = _("[%(tenant)s] Weekly report") % {"tenant": tenant.name}
    else:
        subject = _("[%(tenant)s] Daily report") % {"tenant": tenant.name}
    return (
        subject,
        render_to_string("reports/email/report.txt", context),
        render_to_string("reports/email/report.html", context),
    )


def report_whatsapp_render(context: dict[str, Any]) -> str:
    return render_to_string("reports/whatsapp.txt", context).strip()


def report_template_variables(context: dict[str, Any]) -> list[str]:
    """The template's {{1}} (the heading: whose report, which period) and {{2}} (the numbers, one line:
    Meta refuses new lines and tabs in a parameter)."""
    heading = render_to_string("reports/_heading.txt", context).strip()
    numbers = " ".join(render_to_string("reports/_template_numbers.txt", context).split())
    return [heading, numbers]


def _owners_emails(tenant: Tenant) -> list[str]:
    return sorted(
        {m.user.email for m in members_of(tenant=tenant).filter(role=OWNER, user__is_active=True) if m.user.email}
    )


def _send_email(run: ReportRun, tenant: Tenant, context: dict[str, Any]) -> ReportRun:
    recipients = _owners_emails(tenant)
    if not recipients:
        return _finish(run, RunStatus.SKIPPED, _("No owner of this workspace has an email address."))
    subject, text, html = report_email_render(context)
    try:
        send_mail(subject=subject, message=text, html_message=html, from_email=None, recipient_list=recipients)
    except Exception as exc:  # the mail server is down: said on the run, never retried (no double send)
        logger.exception("report %s email failed", run.pk)
        refused = _("The mail server refused the email (%(error)s).") % {"error": type(exc).__name__}
        return _finish(run, RunStatus.FAILED, refused)
    return _finish(run, RunStatus.SENT, ", ".join(recipients))


def _send_whatsapp(run: ReportRun, settings: ReportSettings, context: dict[str, Any]) -> ReportRun:
    channel = settings.whatsapp_channel
    if channel is None or channel.kind not in WHATSAPP_KINDS:
        return _finish(run, RunStatus.SKIPPED, _("The WhatsApp channel of the report was removed."))
    key = f"report:{run.pk}"  # a run taken over after a crash finds the message it already queued
    try:
        contact = contact_get_or_create(phone=settings.whatsapp_number)
        conversation = conversation_open(contact=contact, channel=channel)
        template = settings.whatsapp_template
        if channel.kind == ChannelKind.WHATSAPP_CLOUD and not window_open(conversation) and template is not None:
            if _template_problem(template, channel):  # since saved: rejected, paused or moved to another account
                raise ValidationError(_template_problem(template, channel))
            variables = report_template_variables(context)[: template.body_variable_count]
            message = message_send(
                conversation=conversation,
                type=MessageType.TEMPLATE,
                template_name=template.name,
                template_language=template.language,
                template_variables={"body": variables},
                body=template_preview_fill(template.body_text, variables),
                idempotency_key=key,
            )
        else:
            message = message_send(conversation=conversation, body=report_whatsapp_render(context), idempotency_key=key)
    except ValidationError as exc:  # the 24-hour window is closed, the number opted out, the workspace is off
        detail = exc.messages[0] if exc.messages else str(exc)
        if getattr(exc, "code", "") == "window_closed":
            detail = _(
                "The 24-hour window with %(number)s is closed: choose an approved template in the settings to send"
                " the report outside it."
            ) % {"number": settings.whatsapp_number}
        return _finish(run, RunStatus.SKIPPED, detail)
    return _finish(run, RunStatus.SENT, settings.whatsapp_number, message_id=message.pk)


def report_send(*, period: Period, is_test: bool = False) -> list[ReportRun]:
    """Send this period's report to where the settings say, once per medium (for scheduled runs).
    Returns the runs made now (none when every medium already had its report)."""
    tenant = tenant_current()
    settings = report_settings()
    mediums = []
    if settings.email_enabled:
        mediums.append(Medium.EMAIL)
    if settings.whatsapp_number and settings.whatsapp_channel_id:
        mediums.append(Medium.WHATSAPP)
    runs = [run for medium in mediums if (run := _claim(period, medium, is_test)) is not None]
    if not runs:
        return []
    with translation.override(tenant.language):
        context = report_context(tenant=tenant, period=period)
        for run in runs:
            if run.medium == Medium.EMAIL:
                _send_email(run, tenant, context)
            else:
                _send_whatsapp(run, settings, context)
    return runs


def report_send_due(*, now: datetime | None = None) -> list[ReportRun]:
    """This tenant's scheduled report, if its local send time has come and it was not sent yet."""
    tenant = tenant_current()
    period = report_due(report_settings(), now=now or timezone.now(), tz=tenant.timezone)
    if period is None:
        return []
    return report_send(period=period)


def report_test_request(*, actor: HasRole | None) -> None:
    """The settings page's button: the last period's report is sent now by a task (after commit), to
    where the settings say. Raises ValidationError when the settings send it nowhere."""
    permission_check(actor, Action.SETTINGS_MANAGE)
    settings = report_settings()
    if not settings.email_enabled and not (settings.whatsapp_number and settings.whatsapp_channel_id):
        raise ValidationError(_("Choose where the report goes (email, a WhatsApp number or both) and save first."))
    from reports.tasks import report_test_send

    send_on_commit(report_test_send, queue="default")


def report_send_test() -> list[ReportRun]:
    """A test report of the last period (daily unless the report is weekly), not counted as scheduled."""
    tenant = tenant_current()
    today = timezone.now().astimezone(ZoneInfo(tenant.timezone)).date()
    return report_send(period=report_period(report_settings().frequency, today), is_test=True)


def reports_tick(*, now: datetime | None = None) -> int:
    """Beat, every 15 minutes: every active tenant's due report. One tenant's failure never stops the
    others. Returns how many runs were made."""
    made = 0
    now = now or timezone.now()
    tenants = get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True)
    for schema in tenants.values_list("schema_name", flat=True):
        with schema_context(schema):
            try:
                made += len(report_send_due(now=now))
            except Exception:
                logger.exception("scheduled report failed in %s", schema)
    return made
