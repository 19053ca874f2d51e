"""The dashboard home page and its CSV exports: thin, over the same selectors as the API."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts import views as account_views
from accounts.decorators import action_required
from analytics import selectors
from analytics.api import REPORTS, request_filters
from core.roles import Action, role_allows


@action_required(Action.WORKSPACE_VIEW)
def dashboard(request: HttpRequest) -> HttpResponse:
    """The tenant's home: the dashboard for those who may see the numbers, the workspace card otherwise."""
    if not role_allows(request.membership, Action.ANALYTICS_VIEW):  # type: ignore[attr-defined]
        return account_views.home(request)  # type: ignore[return-value]
    from accounts.models import User
    from campaigns.models import Campaign
    from inbox.models import Channel
    from kanban.models import Board

    tenant = request.tenant  # type: ignore[attr-defined]
    try:
        filters = request_filters(request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        filters = selectors.filters_default(tz=tenant.timezone)
    context: dict[str, Any] = {
        "filters": filters,
        "intervals": [("hour", _("By hour")), ("day", _("By day")), ("week", _("By week"))],
        "channels": Channel.objects.order_by("name").values("pk", "name"),
        "campaigns": Campaign.objects.order_by("-created_at").values("pk", "name")[:200],
        "agents": User.objects.filter(memberships__tenant=tenant).order_by("email").values("pk", "email", "name"),
        "boards": Board.objects.order_by("pk").values("pk", "name"),
        "today": selectors.today_counters(tenant.timezone),
        "labels": {
            "received": _("Received"),
            "sent": _("Sent"),
            "delivered": _("Delivered"),
            "read": _("Read"),
            "failed": _("Failed"),
            "opened": _("Opened"),
            "resolved": _("Resolved"),
            "calls": _("Calls"),
            "entered": _("Entered the stage"),
            "leads_now": _("Leads now"),
            "campaign": _("Campaign"),
            "cadence": _("Cadence"),
            "no_data": _("No data for this period yet."),
            "error": _("The numbers could not be loaded. Try again in a moment."),
        },
    }
    return render(request, "analytics/dashboard.html", context)


def _csv_rows(name: str, data: Any) -> tuple[list[str], list[list[Any]]]:
    if name == "summary":
        header = ["kpi", "value", "previous", "change"]
        return header, [[k, v["value"], v["previous"], v["change"]] for k, v in data["kpis"].items()]
    if name == "series":
        header = ["t", *data["fields"]]
        return header, [[p["t"], *(p[f] for f in data["fields"])] for p in data["points"]]
    rows = data["stages"] if name == "funnel" else data
    if not rows:
        return [], []
    header = list(rows[0].keys())
    return header, [[row[k] for k in header] for row in rows]


@action_required(Action.ANALYTICS_VIEW)
def export_csv(request: HttpRequest, report: str) -> HttpResponse:
    """Any table or series of the dashboard, with the page's filters, as CSV."""
    if report not in REPORTS:
        raise Http404
    try:
        filters = request_filters(request)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=400, content_type="text/plain; charset=utf-8")
    header, rows = _csv_rows(report, REPORTS[report](filters))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{report}-{filters.start}-{filters.end}.csv"'
    writer = csv.writer(response)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return response


@action_required(Action.USAGE_VIEW)
def usage(request: HttpRequest) -> HttpResponse:
    """The owner's usage page: the plan's limits, this month's use against them, and the last 30 days."""
    from accounts.selectors import members_of
    from crm.models import Contact
    from inbox.models import Channel
    from tenants import usage as plan_usage

    tenant = request.tenant  # type: ignore[attr-defined]
    counts = {
        "seats": members_of(tenant=tenant).count(),
        "channels": Channel.objects.count(),
        "contacts": Contact.objects.count(),
    }
    rows = plan_usage.usage_overview(tenant=tenant, counts=counts)
    days, _amounts = plan_usage.usage_series(metric="messages.whatsapp_cloud", tenant=tenant)
    chart = {
        "days": [d.isoformat() for d in days],
        "series": [{"metric": r.metric, "label": r.label, "values": r.series} for r in rows if r.metered],
    }
    context = {
        "plan": plan_usage.plan_of(tenant),
        "rows": rows,
        "chart": chart,
        "month": plan_usage.tenant_today(tenant),
        "feature_rows": [(f.value, f.label, on) for f, on in plan_usage.features_list(tenant)],
    }
    return render(request, "analytics/usage.html", context)
