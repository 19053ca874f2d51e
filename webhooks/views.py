"""Settings -> Webhooks: endpoints, their secret (shown once), test events and the delivery log."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.roles import Action
from webhooks import inbound
from webhooks.catalog import EVENT_TYPES
from webhooks.forms import EndpointForm, InboundHookForm
from webhooks.models import Delivery, Endpoint, InboundAuth, InboundEvent, InboundHook
from webhooks.services import (
    delivery_replay,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
    send_test_event,
)


def _form_errors(form: EndpointForm | InboundHookForm, exc: ValidationError) -> None:
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


# --- inbound webhooks ------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def inbound_receive(request: HttpRequest, key: str) -> HttpResponse:
    """Public: another system's POST. Signature first, then the mapping, then the actions."""
    hook = InboundHook.objects.filter(key=key).first()
    if hook is None:
        return JsonResponse({"error": "no such hook"}, status=404)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        event = inbound.receive(hook, request.body, headers)
    except inbound.Refused as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse({"event_id": event.pk, "contact_id": event.contact_id, "actions": event.outcome}, status=202)


def _hook_url(request: HttpRequest, hook: InboundHook) -> str:
    return request.build_absolute_uri(reverse("inbound_receive", args=[hook.key]))


@action_required(Action.WEBHOOK_MANAGE)
def inbound_list(request: HttpRequest) -> HttpResponse:
    form = InboundHookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            hook, secret = inbound.hook_create(
                name=form.cleaned_data["name"],
                auth=request.POST.get("auth", InboundAuth.HMAC),
                mapping=form.mapping(),
                actions=form.actions(),
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            context = {"hook": hook, "secret": secret, "url": _hook_url(request, hook)}
            return render(request, "webhooks/inbound_secret.html", context, status=201)
    hooks = InboundHook.objects.all()
    return render(
        request, "webhooks/inbound_list.html", {"hooks": hooks, "form": form, "auth_choices": InboundAuth.choices}
    )


@action_required(Action.WEBHOOK_MANAGE)
def inbound_detail(request: HttpRequest, pk: int) -> HttpResponse:
    hook = get_object_or_404(InboundHook, pk=pk)
    form = InboundHookForm(request.POST or None, initial=InboundHookForm.initial_for(hook))
    if request.method == "POST" and form.is_valid():
        hook.name, hook.enabled = form.cleaned_data["name"], form.cleaned_data["enabled"]
        try:
            inbound.hook_configure(hook, mapping=form.mapping(), actions=form.actions())
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Inbound webhook saved."))
            return redirect("inbound_hook", pk=hook.pk)
    events = Paginator(hook.events.all(), 25).get_page(request.GET.get("page"))
    context = {"hook": hook, "form": form, "page": events, "url": _hook_url(request, hook)}
    return render(request, "webhooks/inbound_detail.html", context)


@require_POST
@action_required(Action.WEBHOOK_MANAGE)
def inbound_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """What the mapping picks out of a sample body (the editor's live preview)."""
    hook = get_object_or_404(InboundHook, pk=pk)
    sample = request.POST.get("sample", "")
    try:
        values = inbound.mapped_values(hook, json.loads(sample))
        error = "" if values.get("phone") else _("No phone number at %(path)s.") % {"path": hook.mapping.get("phone")}
    except ValueError:
        values, error = {}, _("The sample is not JSON.")
    return render(request, "webhooks/_inbound_preview.html", {"values": values, "error": error})


@require_POST
@action_required(Action.WEBHOOK_MANAGE)
def inbound_event_replay(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(InboundEvent.objects.select_related("hook"), pk=pk)
    try:
        inbound.event_replay(event)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Event applied again."))
    return redirect("inbound_hook", pk=event.hook_id)


@require_POST
@action_required(Action.WEBHOOK_MANAGE)
def inbound_delete(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(InboundHook, pk=pk).delete()
    messages.success(request, _("Inbound webhook deleted."))
    return redirect("inbound_hooks")
