"""Twilio's webhook intake (public URLs): inbound SMS and status callbacks, verified by X-Twilio-Signature
with the channel's own auth token, against the public URL Twilio called (correct behind a proxy)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from inbox.models import Channel
from intake.services import RawEvent, events_store, route_lookup

PROVIDER = "twilio"
REQUIRED = {"inbound": ("MessageSid", "From"), "status": ("MessageSid", "MessageStatus")}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _auth_token_for(account_sid: str, number: str) -> tuple[str, str] | None:
    route = route_lookup(kind="sms_twilio", external_id=f"{account_sid}:{number}")
    if route is None:
        return None
    with schema_context(route.tenant.schema_name):
        channel = Channel.objects.filter(pk=route.channel_id).first()
        token = channel.credentials.get("auth_token", "") if channel else ""
    return (token, f"{account_sid}:{number}") if token else None


def _intake(request: HttpRequest, kind: str, our_number_field: str, event_id: str) -> HttpResponse:
    form = {key: request.POST.get(key, "") for key in request.POST}
    found = _auth_token_for(form.get("AccountSid", ""), form.get(our_number_field, ""))
    url = f"{settings.PUBLIC_WEBHOOK_BASE_URL}{request.get_full_path()}"
    signature = request.headers.get("X-Twilio-Signature", "")
    if found is None or not RequestValidator(found[0]).validate(url, request.POST, signature):
        return HttpResponseForbidden("bad signature")
    missing = [name for name in REQUIRED[kind] if not form.get(name)]
    if missing:  # signed, yet not a callback we can store once: Twilio is told, nothing is kept
        return HttpResponseBadRequest(f"missing {', '.join(missing)}")
    events_store(
        provider=PROVIDER,
        events=[RawEvent(event_id.format(**form), "sms_twilio", found[1], {"kind": kind, "form": form})],
    )
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    return _intake(request, "inbound", "To", "in:{MessageSid}")


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    return _intake(request, "status", "From", "st:{MessageSid}:{MessageStatus}")
