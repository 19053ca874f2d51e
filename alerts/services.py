"""Alerts: raised and cleared by other apps' events (alerts.subscribers), resolved or dismissed by a
manager. One open alert per cause: the partial unique constraint on (kind, key) while open, and one
INSERT ... ON CONFLICT that either opens the alert or counts the repeat, so concurrent raises of the
same cause never make two rows. The first raise emails the tenant's owners and admins, once."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django_tenants.utils import schema_context

from accounts.selectors import members_of
from alerts import kinds
from alerts.models import Alert, Resolution
from alerts.selectors import bell_count
from core import realtime
from core.roles import MANAGERS, Action, HasRole, permission_check
from tenants.models import Tenant
from tenants.services import tenant_url

logger = logging.getLogger(__name__)

LIVE_RAISED = "alert.raised"  # a new alert: the bell counts it and a toast says its title
LIVE_COUNT = "alert.count"  # the number of open alerts changed (cleared, resolved, dismissed)


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


def _clean_detail(detail: Any) -> dict[str, Any]:
    """What is kept of an announcer's detail: a flat dict of short scalars (it is shown, and emailed)."""
    if not isinstance(detail, dict):
        return {}
    kept: dict[str, Any] = {}
    for name, value in list(detail.items())[:20]:
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            kept[str(name)[:40]] = value
        elif isinstance(value, str):
            kept[str(name)[:40]] = value[:300]
    return kept


def alert_raise(*, kind: str, key: str, detail: dict[str, Any] | None = None) -> tuple[Alert, bool]:
    """Open the alert of this cause, or count one more occurrence of the open one (its `detail` becomes
    the latest). Returns (alert, opened). A newly opened alert is pushed live and emailed after commit."""
    now = timezone.now()
    table = Alert._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS a (kind, key, detail, count, first_raised_at, last_seen_at, resolution) "  # noqa: S608 (our table name)
            "VALUES (%s, %s, %s::jsonb, 1, %s, %s, '') "
            "ON CONFLICT (kind, key) WHERE resolved_at IS NULL DO UPDATE SET "
            "count = a.count + 1, last_seen_at = EXCLUDED.last_seen_at, detail = EXCLUDED.detail "
            "RETURNING a.id, (xmax = 0)",
            [kind[:60], key[:200], json.dumps(_clean_detail(detail)), now, now],
        )
        alert_id, opened = cursor.fetchone()
    alert = Alert.objects.get(pk=alert_id)
    if opened:
        schema = _schema()
        transaction.on_commit(lambda: _announce_opened(schema, alert_id))
    return alert, bool(opened)


def alert_clear(*, kind: str, key: str) -> bool:
    """The cause is gone: its open alert (if any) closes by itself."""
    closed = Alert.objects.filter(kind=kind, key=key[:200], resolved_at=None).update(
        resolved_at=timezone.now(), resolution=Resolution.CLEARED
    )
    if closed:
        _count_push_on_commit()
    return bool(closed)


def alert_resolve(*, actor: HasRole | None, alert: Alert, user: Any = None) -> bool:
    """A manager closes the alert by hand (the cause is fixed). If the cause comes back, a new alert
    opens (and emails again)."""
    permission_check(actor, Action.ALERT_MANAGE)
    if alert.resolved_at is not None:
        raise ValidationError(_("This alert is already closed."))
    closed = Alert.objects.filter(pk=alert.pk, resolved_at=None).update(
        resolved_at=timezone.now(), resolution=Resolution.RESOLVED, resolved_by=user
    )
    if closed:
        alert.refresh_from_db()
        _count_push_on_commit()
    return bool(closed)


def alert_dismiss(*, actor: HasRole | None, alert: Alert, user: Any = None) -> bool:
    """Seen: the alert leaves the bell but stays open (and de-duplicates) until its cause is gone."""
    permission_check(actor, Action.ALERT_MANAGE)
    if alert.resolved_at is not None:
        raise ValidationError(_("This alert is already closed."))
    changed = Alert.objects.filter(pk=alert.pk, resolved_at=None, dismissed_at=None).update(
        dismissed_at=timezone.now(), dismissed_by=user
    )
    if changed:
        alert.refresh_from_db()
        _count_push_on_commit()
    return bool(changed)


def _count_push_on_commit() -> None:
    schema = _schema()
    transaction.on_commit(lambda: _count_push(schema))


def _count_push(schema: str) -> None:
    with schema_context(schema):  # an on-commit hook may run after the caller left the schema
        realtime.push(schema, realtime.STAFF_TOPIC, LIVE_COUNT, {"open": bell_count()})


def _tenant(schema: str) -> Tenant | None:
    return Tenant.objects.filter(schema_name=schema).first()


def _announce_opened(schema: str, alert_id: int) -> None:
    """After the commit that opened it: the live toast, then the one email."""
    with schema_context(schema):  # an on-commit hook may run after the caller left the schema
        _announce_opened_here(schema, alert_id)


def _announce_opened_here(schema: str, alert_id: int) -> None:
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        return
    tenant = _tenant(schema)
    language = tenant.language if tenant is not None else None
    with translation.override(language):
        worded = kinds.word(alert.kind, alert.detail)
    realtime.push(
        schema,
        realtime.STAFF_TOPIC,
        LIVE_RAISED,
        {"id": alert.pk, "kind": alert.kind, "title": worded.title, "level": worded.level, "open": bell_count()},
    )
    if tenant is not None:
        try:
            alert_email_send(alert_id=alert.pk, tenant=tenant)
        except Exception:  # the alert stands (bell, list) even when the mail server is down
            logger.exception("alert %s email failed in %s", alert.pk, schema)


def alert_email_send(*, alert_id: int, tenant: Tenant) -> bool:
    """Email the tenant's owners and admins about a newly opened alert, once: the claim (a conditional
    UPDATE of `emailed_at`) goes first, so a second call sends nothing."""
    if not Alert.objects.filter(pk=alert_id, emailed_at=None).update(emailed_at=timezone.now()):
        return False
    alert = Alert.objects.get(pk=alert_id)
    recipients = sorted(
        {
            m.user.email
            for m in members_of(tenant=tenant).filter(role__in=MANAGERS, user__is_active=True)
            if m.user.email
        }
    )
    if not recipients:
        return False
    with translation.override(tenant.language):
        worded = kinds.word(alert.kind, alert.detail)
        context = {
            "tenant": tenant,
            "alert": alert,
            "worded": worded,
            "link": tenant_url(tenant, worded.link) if worded.link else "",
            "alerts_link": tenant_url(tenant, "/alerts/"),
        }
        send_mail(
            subject=_("[%(tenant)s] %(title)s") % {"tenant": tenant.name, "title": worded.title},
            message=render_to_string("alerts/email/alert.txt", context),
            from_email=None,
            recipient_list=recipients,
        )
    return True
