"""Outgoing webhooks: endpoints (URL through the SSRF guard, a secret shown once, rotation with overlap),
deliveries created when an event happens, replays and test events. Sending is in webhooks.delivery."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core import events
from core.urlguard import FetchFailed, url_check
from tenants import usage
from tenants.models import Feature
from webhooks import signing
from webhooks.catalog import EVENT_TYPES, TEST_EVENT
from webhooks.models import Delivery, DeliveryStatus, Endpoint

ROTATION_OVERLAP = timedelta(hours=24)
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "user-agent"})
MAX_HEADERS = 10


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


def _url_clean(url: str) -> str:
    url = url.strip()
    try:
        url_check(url)
    except FetchFailed as exc:
        raise ValidationError({"url": _("This URL cannot receive webhooks: %(reason)s.") % {"reason": exc}}) from exc
    return url


def _events_clean(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError({"events": _("Unknown events: %(names)s.") % {"names": ", ".join(unknown)}})
    if not events:
        raise ValidationError({"events": _("Choose at least one event.")})
    return sorted(set(events))


def _headers_clean(headers: dict[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for name, value in headers.items():
        name = str(name).strip()
        lowered = name.lower()
        if not name:
            continue
        if lowered in RESERVED_HEADERS or lowered.startswith("webhook-"):
            raise ValidationError({"headers": _("The header %(name)s is set by us.") % {"name": name}})
        if any(c in name + str(value) for c in "\r\n") or not name.replace("-", "").isalnum():
            raise ValidationError({"headers": _("The header %(name)s is not valid.") % {"name": name}})
        clean[name] = str(value)
    if len(clean) > MAX_HEADERS:
        raise ValidationError({"headers": _("At most %(n)s custom headers.") % {"n": MAX_HEADERS}})
    return clean


def endpoint_create(
    *, url: str, events: list[str], description: str = "", headers: dict[str, str] | None = None
) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (returned here once; stored encrypted, never shown again)."""
    secret = signing.secret_new()
    endpoint = Endpoint.objects.create(
        url=_url_clean(url),
        events=_events_clean(events),
        description=description.strip()[:200],
        headers=_headers_clean(headers or {}),
        secrets={"current": secret, "previous": "", "previous_until": ""},
    )
    subscriptions_changed()
    return endpoint, secret


def endpoint_update(
    endpoint: Endpoint,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    headers: dict[str, str] | None = None,
    enabled: bool | None = None,
) -> Endpoint:
    if url is not None:
        endpoint.url = _url_clean(url)
    if events is not None:
        endpoint.events = _events_clean(events)
    if description is not None:
        endpoint.description = description.strip()[:200]
    if headers is not None:
        endpoint.headers = _headers_clean(headers)
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        if enabled:  # switched back on: a fresh start, what waited goes now
            endpoint.disabled_reason, endpoint.failing_since, endpoint.slow_until = "", None, None
            endpoint_alerts_clear(endpoint)
    endpoint.save()
    subscriptions_changed()
    if endpoint.enabled:
        deliveries_kick()
    return endpoint


def endpoint_disable(endpoint: Endpoint, reason: str) -> None:
    endpoint.enabled, endpoint.disabled_reason = False, reason[:200]
    endpoint.save(update_fields=["enabled", "disabled_reason"])
    subscriptions_changed()
    endpoint_alert_disabled(endpoint)


def endpoint_delete(endpoint: Endpoint) -> None:
    endpoint_alerts_clear(endpoint)
    endpoint.delete()
    subscriptions_changed()


# --- the tenant's alerts about an endpoint (worded by the alerts app: codes and ids only) -----------

ALERT_FAILING = "webhook.failing"
ALERT_DISABLED = "webhook.disabled"


def _alert(event: str, kind: str, endpoint: Endpoint, **detail: Any) -> None:
    payload: dict[str, Any] = {"kind": kind, "key": str(endpoint.pk)}
    if event == events.ALERT_RAISED:
        payload["detail"] = {"endpoint_id": endpoint.pk, "url": endpoint.url[:200], **detail}
    events.announce(event, str(getattr(connection, "schema_name", "public")), payload)


def endpoint_alert_failing(endpoint: Endpoint, *, status: str) -> None:
    _alert(events.ALERT_RAISED, ALERT_FAILING, endpoint, status=status[:60])


def endpoint_alert_disabled(endpoint: Endpoint) -> None:
    _alert(events.ALERT_CLEARED, ALERT_FAILING, endpoint)
    _alert(events.ALERT_RAISED, ALERT_DISABLED, endpoint, reason=endpoint.disabled_reason[:200])


def endpoint_alerts_clear(endpoint: Endpoint) -> None:
    """It delivers again (or was switched on again, or is gone): its alerts close."""
    _alert(events.ALERT_CLEARED, ALERT_FAILING, endpoint)
    _alert(events.ALERT_CLEARED, ALERT_DISABLED, endpoint)


def endpoint_rotate_secret(endpoint: Endpoint, *, overlap: timedelta = ROTATION_OVERLAP) -> str:
    """A new secret; the old one keeps signing too until the overlap ends (both signatures are sent)."""
    secret = signing.secret_new()
    endpoint.secrets = {
        "current": secret,
        "previous": endpoint.secrets.get("current", ""),
        "previous_until": (timezone.now() + overlap).isoformat(),
    }
    endpoint.save(update_fields=["secrets"])
    return secret


def active_secrets(endpoint: Endpoint) -> list[str]:
    found = [endpoint.secrets["current"]]
    previous, until = endpoint.secrets.get("previous", ""), endpoint.secrets.get("previous_until", "")
    if previous and until and datetime.fromisoformat(until) > timezone.now():
        found.append(previous)
    return found


def _webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex + secrets.token_hex(4)


def _subscriptions() -> dict[str, list[int]]:
    """event type -> enabled endpoint ids, cached per tenant (dropped whenever an endpoint changes), so an
    event in a tenant without endpoints costs one cache read."""
    key = f"{_schema()}:webhooks:subscriptions"
    found = cache.get(key)
    if found is None:
        found = {}
        # A plan without outgoing webhooks delivers nothing (a plan change drops this: subscribers).
        enabled = Endpoint.objects.filter(enabled=True)
        if not usage.feature_enabled(Feature.WEBHOOKS):
            enabled = enabled.none()
        for pk, names in enabled.values_list("pk", "events"):
            for name in names:
                found.setdefault(name, []).append(pk)
        cache.set(key, found, 300)
    return dict(found)


def subscriptions_changed() -> None:
    key = f"{_schema()}:webhooks:subscriptions"
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


def event_publish(event_type: str, data: dict[str, Any]) -> int:
    """One delivery per enabled endpoint that subscribed to `event_type` (in the current tenant)."""
    endpoints = _subscriptions().get(event_type, [])
    if not endpoints:
        return 0
    body = {"type": event_type, "timestamp": timezone.now().isoformat(), "data": data}
    now = timezone.now()
    Delivery.objects.bulk_create(
        [
            Delivery(endpoint_id=pk, webhook_id=_webhook_id(), event_type=event_type, payload=body, next_attempt_at=now)
            for pk in endpoints
        ]
    )
    deliveries_kick()
    return len(endpoints)


def events_publish(event_type: str, datas: list[dict[str, Any]]) -> int:
    """event_publish for many events of one type (a batch of statuses): one cache read, one INSERT."""
    endpoints = _subscriptions().get(event_type, [])
    if not endpoints or not datas:
        return 0
    now = timezone.now()
    stamp = now.isoformat()
    Delivery.objects.bulk_create(
        [
            Delivery(
                endpoint_id=pk,
                webhook_id=_webhook_id(),
                event_type=event_type,
                payload={"type": event_type, "timestamp": stamp, "data": data},
                next_attempt_at=now,
            )
            for data in datas
            for pk in endpoints
        ],
        batch_size=1000,
    )
    deliveries_kick()
    return len(endpoints) * len(datas)


def endpoint_event_send(endpoint_id: int, event_type: str, data: dict[str, Any]) -> list[int]:
    """One delivery of `event_type` to one enabled endpoint (an automation rule's "call a webhook"),
    whatever it subscribed to. Returns the delivery's id ([] when the endpoint is gone or disabled, or the
    plan leaves outgoing webhooks out)."""
    if not Endpoint.objects.filter(pk=endpoint_id, enabled=True).exists():
        return []
    if not usage.feature_enabled(Feature.WEBHOOKS):
        return []
    body = {"type": event_type, "timestamp": timezone.now().isoformat(), "data": data}
    delivery = Delivery.objects.create(
        endpoint_id=endpoint_id,
        webhook_id=_webhook_id(),
        event_type=event_type,
        payload=body,
        next_attempt_at=timezone.now(),
    )
    deliveries_kick()
    return [delivery.pk]


def endpoints_for_rules() -> list[tuple[int, str]]:
    return [(pk, url) for pk, url in Endpoint.objects.filter(enabled=True).values_list("pk", "url")]


def inbound_hooks_for_rules() -> list[tuple[int, str]]:
    from webhooks.models import InboundHook

    return [(pk, name) for pk, name in InboundHook.objects.values_list("pk", "name")]


def send_test_event(endpoint: Endpoint) -> Delivery:
    body = {
        "type": TEST_EVENT,
        "timestamp": timezone.now().isoformat(),
        "data": {"endpoint_id": endpoint.pk, "message": "This is a test event."},
    }
    delivery = Delivery.objects.create(
        endpoint=endpoint, webhook_id=_webhook_id(), event_type=TEST_EVENT, payload=body, next_attempt_at=timezone.now()
    )
    deliveries_kick()
    return delivery


def delivery_replay(delivery: Delivery) -> Delivery:
    """Send it again, with the same webhook id (a receiver that already has it can drop it)."""
    if delivery.status == DeliveryStatus.PENDING and delivery.claimed_until and delivery.claimed_until > timezone.now():
        raise ValidationError(_("This delivery is being sent right now."))
    delivery.status, delivery.next_attempt_at, delivery.claimed_until = DeliveryStatus.PENDING, timezone.now(), None
    delivery.save(update_fields=["status", "next_attempt_at", "claimed_until"])
    deliveries_kick()
    return delivery


def deliveries_kick() -> None:
    """After the commit: have a runner work through this tenant's due deliveries."""
    schema = _schema()
    transaction.on_commit(lambda: _kick_now(schema))


def _kick_now(schema: str) -> None:
    from webhooks.delivery import runner_start

    runner_start(schema)
