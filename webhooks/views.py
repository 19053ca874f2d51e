"""Settings -> Webhooks: endpoints, their secret (shown once), test events and the delivery log."""

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
from webhooks.catalog import EVENT_TYPES
from webhooks.forms import EndpointForm
from webhooks.models import Delivery, Endpoint
from webhooks.services import (
    delivery_replay,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
    send_test_event,
)


def _form_errors(form: EndpointForm, exc: ValidationError) -> None:
    for key, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
        form.add_error(key if key in form.fields else None, errors)


@action_required(Action.WEBHOOK_MANAGE)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None, initial={"enabled": True})
    if request.method == "POST" and form.is_valid():
        data = form.values()
        try:
            endpoint, secret = endpoint_create(
                url=data["url"], events=data["events"], description=data["description"], headers=data["headers"]
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:  # the secret is rendered in this answer only: never stored in the session or shown again
            return render(request, "webhooks/secret.html", {"endpoint": endpoint, "secret": secret}, status=201)
    return render(request, "webhooks/endpoints.html", {"endpoints": Endpoint.objects.all(), "form": form})


@action_required(Action.WEBHOOK_MANAGE)
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    initial = {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
    }
    form = EndpointForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.values()
        try:
            endpoint_update(endpoint, **data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Endpoint saved."))
            return redirect("webhook_endpoint", pk=endpoint.pk)
    deliveries = Paginator(Delivery.objects.filter(endpoint=endpoint), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/endpoint.html",
        {"endpoint": endpoint, "form": form, "page": deliveries, "event_labels": EVENT_TYPES},
    )


@require_POST
@action_required(Action.WEBHOOK_MANAGE)
def endpoint_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    secret = endpoint_rotate_secret(endpoint)
    return render(request, "webhooks/secret.html", {"endpoint": endpoint, "secret": secret, "rotated": True})


@require_POST
@action_required(Action.WEBHOOK_MANAGE)
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    send_test_event(get_object_or_404(Endpoint, pk=pk))
    messages.success(request, _("Test event queued: it shows in the log below in a moment."))
    return redirect("webhook_endpoint", pk=pk)


@require_POST
@action_required(Action.WEBHOOK_MANAGE)
def endpoint_remove(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint_delete(get_object_or_404(Endpoint, pk=pk))
    messages.success(request, _("Endpoint deleted."))
    return redirect("webhook_endpoints")


@require_POST
@action_required(Action.WEBHOOK_MANAGE)
def delivery_resend(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    try:
        delivery_replay(delivery)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Delivery queued again, with the same webhook id."))
    return redirect("webhook_endpoint", pk=delivery.endpoint_id)


@action_required(Action.WEBHOOK_MANAGE)
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("endpoint"), pk=pk)
    return render(request, "webhooks/delivery.html", {"delivery": delivery, "attempts": delivery.attempt_log.all()})
