"""Meta's webhook intake (public URL, every tenant): verify, split into events, store once, answer 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from intake.services import RawEvent, events_store

logger = logging.getLogger(__name__)
PROVIDER = "meta"


def signature_valid(body: bytes, header: str) -> bool:
    """X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of the raw body with the App Secret."""
    return _signature_matches(settings.META_APP_SECRET, body, header)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_loads_strict(raw: bytes) -> Any:
    """JSON as PostgreSQL's jsonb accepts it: no NaN/Infinity (nor numbers that overflow to it), and a
    nesting too deep to parse is an error like any other (ValueError), never a crash."""
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list; anything else is no items (a signed body can still be malformed)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _scalar(value: Any) -> str:
    """A JSON string or number as text; "" for anything else (null, bool, list, object)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value)


def id_pair(value: Any, previous: Any = None) -> tuple[str, str]:
    """(previous, current) of an id that changed: `{"previous": ..., "current": ...}`, or the new id
    with a separate `previous_*` field."""
    if isinstance(value, dict):
        return _scalar(value.get("previous")), _scalar(value.get("current"))
    return _scalar(previous), _scalar(value)


def split_events(body: Any) -> list[RawEvent]:
    """One stored event per message, status, template update or preference, each with Meta's own id.
    Total: any JSON value gives a list; items without the ids they need are skipped (logged), never an
    error, so a malformed but signed delivery is answered 200 and not redelivered for days."""
    found: list[RawEvent] = []
    skipped = 0
    for entry in _dicts(_dict(body).get("entry")):
        waba_id = _scalar(entry.get("id"))
        for change in _dicts(entry.get("changes")):
            field, value = _scalar(change.get("field")), _dict(change.get("value"))
            pnid = _scalar(_dict(value.get("metadata")).get("phone_number_id"))
            if field == "messages":
                contacts = _dicts(value.get("contacts"))
                for message in _dicts(value.get("messages")):
                    message_id = _scalar(message.get("id"))
                    if not message_id:
                        skipped += 1
                        continue
                    payload = {"kind": "message", "message": message, "contacts": contacts}
                    found.append(RawEvent(f"msg:{message_id}", "whatsapp_cloud", pnid, payload))
                for status in _dicts(value.get("statuses")):
                    status_id, state = _scalar(status.get("id")), _scalar(status.get("status"))
                    if not status_id or not state:
                        skipped += 1
                        continue
                    payload = {"kind": "status", "status": status}
                    found.append(RawEvent(f"st:{status_id}:{state}", "whatsapp_cloud", pnid, payload))
            elif field in COEXISTENCE_FIELDS:
                found.extend(COEXISTENCE_FIELDS[field](pnid, value))
            elif field == "message_template_status_update":
                event_id = (
                    f"tpl:{_scalar(value.get('message_template_id'))}:{_scalar(value.get('event'))}"
                    f":{_scalar(entry.get('time'))}"
                )
                found.append(RawEvent(event_id, "whatsapp_waba", waba_id, {"kind": "template", "value": value}))
            elif field == "phone_number_quality_update":  # no phone number id: the WABA routes it
                number, what = _scalar(value.get("display_phone_number")), _scalar(value.get("event"))
                event_id = f"quality:{waba_id}:{number}:{what}:{_scalar(entry.get('time'))}"
                found.append(RawEvent(event_id, "whatsapp_waba", waba_id, {"kind": "quality", "value": value}))
            elif field == "user_preferences":
                for pref in _dicts(value.get("user_preferences")):
                    who = _scalar(pref.get("wa_id")) or _scalar(
                        pref.get("user_id")
                    )  # a BSUID alone, for a username user
                    event_id = ":".join(
                        ["pref", who, *(_scalar(pref.get(k)) for k in ("category", "value", "timestamp"))]
                    )
                    found.append(RawEvent(event_id, "whatsapp_cloud", pnid, {"kind": "preference", "preference": pref}))
            elif field == "user_id_update":
                # A user's BSUID changed. Meta's changelog (Aug 2026) moved this to `messages` as a system
                # message; partners still document the field, so both arrive as one kind of event.
                items = _dicts(value.get("user_id_update")) or [value]
                for item in items:
                    previous, current = id_pair(item.get("user_id"), item.get("previous_user_id"))
                    if not previous or not current:
                        skipped += 1
                        continue
                    route_kind, route_key = ("whatsapp_cloud", pnid) if pnid else ("whatsapp_waba", waba_id)
                    event_id = f"uid:{previous}:{current}"
                    found.append(RawEvent(event_id, route_kind, route_key, {"kind": "user_id_update", "update": item}))
            else:
                digest = hashlib.sha256(json.dumps(change, sort_keys=True).encode()).hexdigest()[:32]
                found.append(
                    RawEvent(
                        f"other:{field[:60]}:{digest}", "whatsapp_waba", waba_id, {"kind": "other", "change": change}
                    )
                )
    if skipped:
        logger.warning("meta webhook: %s item(s) without their id skipped", skipped)
    return found


# --- coexistence: the number is also in the WhatsApp Business app (history, echoes, address book) ---


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def _echo_events(pnid: str, value: dict[str, Any]) -> list[RawEvent]:
    """smb_message_echoes: one event per message the owner sent from the phone, keyed by its wamid."""
    found = []
    for echo in _dicts(value.get("message_echoes")):
        message_id = _scalar(echo.get("id"))
        if message_id:
            payload = {
                "kind": "echo",
                "message": echo,
                "business": _scalar(_dict(value.get("metadata")).get("display_phone_number")),
            }
            found.append(RawEvent(f"echo:{message_id}", "whatsapp_cloud", pnid, payload))
    return found


def _history_events(pnid: str, value: dict[str, Any]) -> list[RawEvent]:
    """history: per chunk one progress event (phase, chunk order, progress) and one event per message,
    keyed by the wamid and a digest of the message, so a redelivered chunk is stored once while Meta's
    later copy of a media message (now with its media id) is a new event that completes the first. A
    decline (errors instead of threads) is one event per number and error code."""
    found = []
    business = _scalar(_dict(value.get("metadata")).get("display_phone_number"))
    for item in _dicts(value.get("history")):
        meta = _dict(item.get("metadata"))
        for error in _dicts(item.get("errors")):
            code = _scalar(error.get("code"))
            found.append(
                RawEvent(f"histerr:{pnid}:{code}", "whatsapp_cloud", pnid, {"kind": "history_error", "error": error})
            )
        threads = _dicts(item.get("threads"))
        if meta:
            chunk = ":".join(_scalar(meta.get(k)) for k in ("phase", "chunk_order", "progress"))
            payload = {"kind": "history_progress", "metadata": meta}
            found.append(RawEvent(f"histchunk:{pnid}:{chunk}:{_digest(threads)}", "whatsapp_cloud", pnid, payload))
        for thread in threads:
            customer = _scalar(thread.get("id"))
            for message in _dicts(thread.get("messages")):
                message_id = _scalar(message.get("id"))
                if not message_id:
                    continue
                payload = {
                    "kind": "history_message",
                    "thread": {k: v for k, v in thread.items() if k != "messages"},
                    "customer": customer,
                    "business": business,
                    "message": message,
                }
                found.append(RawEvent(f"hist:{message_id}:{_digest(message)}", "whatsapp_cloud", pnid, payload))
    return found


def _state_sync_events(pnid: str, value: dict[str, Any]) -> list[RawEvent]:
    """smb_app_state_sync: one event per address-book change (contact, action, Meta's time)."""
    found = []
    for item in _dicts(value.get("state_sync")):
        contact = _dict(item.get("contact"))
        when = _scalar(_dict(item.get("metadata")).get("timestamp"))
        key = f"{_scalar(contact.get('phone_number'))}:{_scalar(item.get('action'))}:{when}:{_digest(item)}"
        found.append(RawEvent(f"appsync:{pnid}:{key}", "whatsapp_cloud", pnid, {"kind": "state_sync", "item": item}))
    return found


COEXISTENCE_FIELDS = {
    "smb_message_echoes": _echo_events,
    "history": _history_events,
    "smb_app_state_sync": _state_sync_events,
}


def _verification_answer(request: HttpRequest, verify_token: str) -> HttpResponse:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is ours (never an empty one)."""
    token_ok = hmac.compare_digest(request.GET.get("hub.verify_token", ""), verify_token or "\0")
    if request.GET.get("hub.mode") == "subscribe" and token_ok:
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return HttpResponseForbidden("verification failed")


@require_GET
def meta_webhook(request: HttpRequest) -> HttpResponse:
    """GET /webhooks/whatsapp/: the subscription handshake. POSTs never reach Django: the ASGI fast path
    below serves them (config/asgi.py FAST_PATHS)."""
    return _verification_answer(request, settings.META_VERIFY_TOKEN)


MAX_BODY = 3 * 1024 * 1024


async def meta_webhook_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /webhooks/whatsapp/ as a plain ASGI app: verify, store once, 200, without Django's request
    stack (Meta sends three status callbacks for every message). GET verification stays in Django."""
    from intake.aio import events_store_async

    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            await _respond(send, 413, b"too large")
            return
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    headers = dict(scope.get("headers") or [])
    if not signature_valid(body, headers.get(b"x-hub-signature-256", b"").decode("latin-1")):
        await _respond(send, 403, b"bad signature")
        return
    try:
        parsed = json_loads_strict(body)
    except ValueError:
        await _respond(send, 400, b"not JSON")
        return
    try:
        await events_store_async(provider=PROVIDER, events=split_events(parsed))
    except Exception:
        logger.exception("meta webhook intake failed; Meta will redeliver")
        await _respond(send, 500, b"try again")
        return
    await _respond(send, 200, b"OK")


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


APP_ROUTE_KIND = "whatsapp_app"  # a channel on the tenant's own Meta app: its webhook URL carries this key


def _signature_matches(secret: str, body: bytes, header: str) -> bool:
    if not secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[7:].strip().lower())


@csrf_exempt
def meta_app_webhook(request: HttpRequest, key: str) -> HttpResponse:
    """The webhook of a channel connected with the tenant's own Meta app. The route is found from the URL
    first, the request verified with that channel's own secret (or verify token), and then only events
    for that channel's own ids are kept: a tenant who holds an app secret can sign for its numbers only."""
    from django_tenants.utils import schema_context

    from inbox.models import Channel
    from inbox.providers import provider_class
    from intake.services import route_lookup

    route = route_lookup(kind=APP_ROUTE_KIND, external_id=key)
    if route is None:
        return HttpResponse(status=404)
    with schema_context(route.tenant.schema_name):
        channel = Channel.objects.filter(pk=route.channel_id).first()
        if channel is None:
            return HttpResponse(status=404)
        creds = channel.credentials
        own_keys = set(provider_class(channel.kind).route_keys(channel))
    if request.method == "GET":
        return _verification_answer(request, str(creds.get("verify_token") or ""))
    if request.method != "POST":
        return HttpResponse(status=405)
    body = request.body
    if not _signature_matches(str(creds.get("app_secret", "")), body, request.headers.get("X-Hub-Signature-256", "")):
        return HttpResponseForbidden("bad signature")
    try:
        parsed = json.loads(body)
    except ValueError:
        return HttpResponse("not JSON", status=400)
    found = split_events(parsed)
    mine = [event for event in found if (event.route_kind, event.route_key) in own_keys]
    if len(mine) < len(found):
        logger.warning(
            "own-app webhook of %s/%s carried %d events for ids it does not own; dropped",
            route.tenant.schema_name,
            channel.pk,
            len(found) - len(mine),
        )
    events_store(provider=PROVIDER, events=mine)
    return HttpResponse("OK")
