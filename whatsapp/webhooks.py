"""Meta's webhook intake (public URL, every tenant): verify, split into events, store once, answer 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from intake.services import RawEvent, events_store

logger = logging.getLogger(__name__)
PROVIDER = "meta"


def signature_valid(body: bytes, header: str) -> bool:
    """X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of the raw body with the App Secret."""
    return _signature_matches(settings.META_APP_SECRET, body, header)


def split_events(body: dict[str, Any]) -> list[RawEvent]:
    """One stored event per message, status, template update or preference, each with Meta's own id."""
    found: list[RawEvent] = []
    for entry in body.get("entry") or []:
        waba_id = str(entry.get("id", ""))
        for change in entry.get("changes") or []:
            field, value = change.get("field"), change.get("value") or {}
            pnid = str((value.get("metadata") or {}).get("phone_number_id", ""))
            if field == "messages":
                contacts = value.get("contacts") or []
                for message in value.get("messages") or []:
                    found.append(
                        RawEvent(
                            f"msg:{message['id']}",
                            "whatsapp_cloud",
                            pnid,
                            {"kind": "message", "message": message, "contacts": contacts},
                        )
                    )
                for status in value.get("statuses") or []:
                    event_id = f"st:{status['id']}:{status['status']}"
                    found.append(RawEvent(event_id, "whatsapp_cloud", pnid, {"kind": "status", "status": status}))
            elif field == "message_template_status_update":
                event_id = f"tpl:{value.get('message_template_id')}:{value.get('event')}:{entry.get('time', '')}"
                found.append(RawEvent(event_id, "whatsapp_waba", waba_id, {"kind": "template", "value": value}))
            elif field == "user_preferences":
                for pref in value.get("user_preferences") or []:
                    event_id = (
                        f"pref:{pref.get('wa_id')}:{pref.get('category')}:{pref.get('value')}:{pref.get('timestamp')}"
                    )
                    found.append(RawEvent(event_id, "whatsapp_cloud", pnid, {"kind": "preference", "preference": pref}))
            else:
                digest = hashlib.sha256(json.dumps(change, sort_keys=True).encode()).hexdigest()[:32]
                found.append(
                    RawEvent(f"other:{field}:{digest}", "whatsapp_waba", waba_id, {"kind": "other", "change": change})
                )
    return found


@csrf_exempt
def meta_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        token_ok = hmac.compare_digest(request.GET.get("hub.verify_token", ""), settings.META_VERIFY_TOKEN or "\0")
        if request.GET.get("hub.mode") == "subscribe" and token_ok:
            return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
        return HttpResponseForbidden("verification failed")
    if request.method != "POST":
        return HttpResponse(status=405)
    body = request.body
    if not signature_valid(body, request.headers.get("X-Hub-Signature-256", "")):
        return HttpResponseForbidden("bad signature")
    try:
        parsed = json.loads(body)
    except ValueError:
        return HttpResponse("not JSON", status=400)
    events_store(provider=PROVIDER, events=split_events(parsed))
    return HttpResponse("OK")


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
        parsed = json.loads(body)
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
        token_ok = hmac.compare_digest(request.GET.get("hub.verify_token", ""), creds.get("verify_token") or "\0")
        if request.GET.get("hub.mode") == "subscribe" and token_ok:
            return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
        return HttpResponseForbidden("verification failed")
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
