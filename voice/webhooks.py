"""Public webhook intake of the voice app (main domain): Retell's call events and Twilio's incoming calls.
The route in the URL names the tenant (intake routing table); nothing is read or written before the
signature is checked against the raw body with that tenant's own secret."""

from __future__ import annotations

import json
import logging
from xml.sax.saxutils import escape, quoteattr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_tenants.utils import schema_context
from twilio.request_validator import RequestValidator

from intake.services import route_lookup
from voice.models import FallbackAction
from voice.retell import signature_valid
from voice.selectors import twilio_auth_token, voice_api_key
from voice.services import (
    ROUTE_KIND,
    InboundAnswer,
    call_event_apply,
    call_inbound_answer,
    call_twilio_status_apply,
    call_voicemail_recorded,
    sip_uri,
)

logger = logging.getLogger(__name__)

HANGUP_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'


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
    sip = escape(sip_uri(call_id))
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Sip>{sip}</Sip></Dial></Response>'


def _attr(value: str) -> str:
    return quoteattr(value)


def fallback_twiml(answer: InboundAnswer, route: str) -> str:
    """What a caller hears when no AI agent can take the call: the tenant's message (pt-BR, their voice),
    then a person (<Dial>) or a voicemail (<Record>)."""
    row = answer.settings
    assert row is not None
    voice = _attr(row.fallback_voice)
    say = f'<Say language="pt-BR" voice={voice}>{escape(row.fallback_message)}</Say>'
    if answer.fallback == FallbackAction.FORWARD and row.fallback_number:
        then = f'<Dial timeout="30" answerOnBridge="true">{escape(row.fallback_number)}</Dial>'
    else:
        action = _attr(f"{settings.PUBLIC_WEBHOOK_BASE_URL}/webhooks/twilio/voice/{route}/recorded/")
        then = (
            f'<Say language="pt-BR" voice={voice}>{escape(row.voicemail_prompt)}</Say>'
            f'<Record action={action} maxLength="120" playBeep="true" finishOnKey="#"/>'
        )
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{say}{then}</Response>'


def _twilio_checked(request: HttpRequest, route: str) -> str | HttpResponse:
    """The tenant's schema when the request is signed with its Twilio voice token; else a 403 to return.
    Must run inside no schema: it switches for the token lookup only."""
    schema = _schema_for(route)
    if schema is None:
        return HttpResponse("bad signature", status=403)
    url = f"{settings.PUBLIC_WEBHOOK_BASE_URL}{request.get_full_path()}"
    signature = request.headers.get("X-Twilio-Signature", "")
    with schema_context(schema):
        token = twilio_auth_token(account_sid=request.POST.get("AccountSid", ""))
    if not token or not signature or not RequestValidator(token).validate(url, request.POST, signature):
        return HttpResponse("bad signature", status=403)
    return schema


def _call_sid(request: HttpRequest) -> str:
    call_sid = request.POST.get("CallSid", "")
    return call_sid if call_sid and len(call_sid) <= 64 and "\x00" not in call_sid else ""


def _twilio_call(request: HttpRequest, route: str) -> tuple[str, str] | HttpResponse:
    """(the tenant's schema, the CallSid) of a signed Twilio voice webhook; else the 403 or 400 to return."""
    checked = _twilio_checked(request, route)
    if isinstance(checked, HttpResponse):
        return checked
    call_sid = _call_sid(request)
    if not call_sid:
        return HttpResponse("missing or invalid CallSid", status=400)
    return checked, call_sid


@csrf_exempt
@require_POST
def twilio_voice(request: HttpRequest, route: str) -> HttpResponse:
    """Twilio's VoiceUrl for our numbers: bridge the call to its Retell agent over SIP, or the fallback."""
    found = _twilio_call(request, route)
    if isinstance(found, HttpResponse):
        return found
    checked, call_sid = found
    with schema_context(checked):
        answer = call_inbound_answer(
            from_number=request.POST.get("From", ""), to_number=request.POST.get("To", ""), twilio_call_sid=call_sid
        )
        twiml = sip_twiml(str(answer.call.retell_call_id)) if answer.sip_uri else fallback_twiml(answer, route)
    return HttpResponse(twiml, content_type="text/xml")


@csrf_exempt
@require_POST
def twilio_voice_status(request: HttpRequest, route: str) -> HttpResponse:
    """Twilio's StatusCallback for calls on our numbers (initiated, ringing, answered, completed...)."""
    found = _twilio_call(request, route)
    if isinstance(found, HttpResponse):
        return found
    checked, call_sid = found
    with schema_context(checked):
        call_twilio_status_apply(
            twilio_call_sid=call_sid,
            call_status=request.POST.get("CallStatus", ""),
            duration_s=request.POST.get("CallDuration", ""),
        )
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_voice_recorded(request: HttpRequest, route: str) -> HttpResponse:
    """<Record action>: the caller's voicemail after the fallback. Keep its link, then hang up."""
    found = _twilio_call(request, route)
    if isinstance(found, HttpResponse):
        return found
    checked, call_sid = found
    with schema_context(checked):
        call_voicemail_recorded(
            twilio_call_sid=call_sid,
            recording_url=request.POST.get("RecordingUrl", ""),
        )
    return HttpResponse(HANGUP_TWIML, content_type="text/xml")
