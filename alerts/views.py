"""The alerts page: open and closed alerts with their words, filters, and (managers) resolve or
dismiss. Everyone may read (core.roles: ALERT_VIEW / ALERT_MANAGE)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from alerts.models import Alert
from alerts.selectors import STATES, alert_kinds_known, alerts_filtered, alerts_worded
from alerts.services import alert_dismiss, alert_resolve
from core.roles import Action


@action_required(Action.ALERT_VIEW)
def alert_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "open")
    state = state if state in STATES else "open"
    kind = request.GET.get("kind", "")
    page = Paginator(alerts_filtered(state=state, kind=kind), 30).get_page(request.GET.get("page"))
    return render(
        request,
        "alerts/list.html",
        {
            "page": page,
            "items": alerts_worded(list(page.object_list)),
            "state": state,
            "kind": kind,
            "kinds": alert_kinds_known(),
        },
    )


@require_POST
@action_required(Action.ALERT_MANAGE)
def alert_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    alert = get_object_or_404(Alert, pk=pk)
    try:
        if action == "resolve":
            alert_resolve(actor=request.membership, alert=alert, user=request.user)  # type: ignore[attr-defined]
            messages.success(request, _("Alert marked resolved."))
        elif action == "dismiss":
            alert_dismiss(actor=request.membership, alert=alert, user=request.user)  # type: ignore[attr-defined]
            messages.success(request, _("Alert dismissed: it stays open until its cause is gone."))
        else:
            raise Http404
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("alert_list")
