"""Public webhook intake of the voice app (main domain): Retell's call events and Twilio's incoming calls.
The route in the URL names the tenant (intake routing table); nothing is read or written before the
signature is checked against the raw body with that tenant's own secret."""

from __future__ import annotations

import json
import logging
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from intake.services import route_lookup
from voice.retell import signature_valid
from voice.selectors import twilio_auth_token, voice_api_key
from voice.services import ROUTE_KIND, call_event_apply, call_inbound_register

logger = logging.getLogger(__name__)

REJECT_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Reject/></Response>'


def _schema_for(route: str) -> str | None:
    found = route_lookup(kind=ROUTE_KIND, external_id=route)
    return found.tenant.schema_name if found is not None else None


@csrf_exempt
@require_POST
def retell_webhook(request: HttpRequest, route: str) -> HttpResponse:
    schema = _schema_for(route)
    if schema is None:
        return HttpResponse("bad signature", status=401)  # an unknown route has no key to check against
    body = request.body  # the raw bytes Retell signed
    with schema_context(schema):
        if not signature_valid(body, voice_api_key(), request.headers.get("x-retell-signature", "")):
            return HttpResponse("bad signature", status=401)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return HttpResponse("bad json", status=400)
        if not isinstance(payload, dict):
            return HttpResponse("bad json", status=400)
        try:
            call_event_apply(payload=payload)
        except (ValueError, TypeError, DataError, ValidationError) as exc:
            # Signed but malformed: a 4xx (Retell retries only a few times), never a 500, nothing half-kept.
            logger.warning("retell webhook in %s refused: %s", schema, type(exc).__name__)
            return HttpResponse("bad payload", status=400)
    return HttpResponse(status=204)


def sip_twiml(call_id: str) -> str:
    sip = escape(f"sip:{call_id}@sip.retellai.com;transport=tcp")
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Sip>{sip}</Sip></Dial></Response>'


@csrf_exempt
@require_POST
def twilio_voice(request: HttpRequest, route: str) -> HttpResponse:
    """Twilio's VoiceUrl for our numbers: register the call with Retell and bridge it there over SIP."""
    schema = _schema_for(route)
    if schema is None:
        return HttpResponse("bad signature", status=403)
    url = f"{settings.PUBLIC_WEBHOOK_BASE_URL}{request.get_full_path()}"
    signature = request.headers.get("X-Twilio-Signature", "")
    with schema_context(schema):
        token = twilio_auth_token(account_sid=request.POST.get("AccountSid", ""))
        if not token or not RequestValidator(token).validate(url, request.POST, signature):
            return HttpResponse("bad signature", status=403)
        call_sid = request.POST.get("CallSid", "")
        if not call_sid or len(call_sid) > 64 or "\x00" in call_sid:
            return HttpResponse("missing or invalid CallSid", status=400)
        try:
            call = call_inbound_register(
                from_number=request.POST.get("From", ""),
                to_number=request.POST.get("To", ""),
                twilio_call_sid=call_sid,
            )
        except ValidationError as exc:
            logger.warning("inbound call in %s not bridged: %s", schema, exc.code)
            return HttpResponse(REJECT_TWIML, content_type="text/xml")
    return HttpResponse(sip_twiml(str(call.retell_call_id)), content_type="text/xml")
