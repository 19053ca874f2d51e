"""Plans at work: metering (UsageDay), the limit in force (plan or the superadmin's override), refusals at
a limit, feature flags, and the 80% / 100% alerts.

Metered metrics (messages per channel kind, AI tokens, voice minutes) are limited per calendar month of
the tenant's time zone; counted ones (seats, channels, contacts) by how many exist. A tenant without a
plan is unlimited and pays one query per check. Alerts are announced as events (core.events) that the
alerts app words, emails and de-duplicates: one per metric and month, cleared when the cause is gone.
"""

from __future__ import annotations

import datetime
import logging
import zlib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from core import events
from tenants.models import METERED, Feature, LimitOverride, Metric, Plan, Tenant, UsageDay

logger = logging.getLogger(__name__)

# The metered message metric of each channel kind (inbox.models.ChannelKind values).
MESSAGES_OF_KIND = {
    "whatsapp_cloud": Metric.MESSAGES_WHATSAPP_CLOUD,
    "whatsapp_web": Metric.MESSAGES_WHATSAPP_WEB,
    "sms_twilio": Metric.MESSAGES_SMS,
}
NEAR_PERCENT = 80
ALERT_NEAR = "usage.limit_near"  # worded by the alerts app (alerts.kinds)
ALERT_REACHED = "usage.limit_reached"
LIMIT_CODE = "usage_limit"
FEATURE_CODE = "feature_disabled"


class LimitReached(ValidationError):
    """A send or a creation that would pass the plan's limit. Its message says so, in the active language."""


class FeatureDisabled(PermissionDenied):
    """The tenant's plan does not include this feature."""

    def __init__(self, feature: str) -> None:
        self.feature = feature
        super().__init__(feature_refusal(feature))


def feature_refusal(feature: str) -> str:
    return _("Your plan does not include %(feature)s. Ask for a plan that includes it to use this.") % {
        "feature": Feature(feature).label
    }


def _tenant(tenant: Tenant | None) -> Tenant | None:
    if tenant is not None:
        return tenant
    current = getattr(connection, "tenant", None)
    if isinstance(current, Tenant) and current.schema_name != "public":
        return current
    schema = getattr(connection, "schema_name", "public")
    if schema == "public":
        return None
    return Tenant.objects.filter(schema_name=schema).first()


def tenant_today(tenant: Tenant) -> datetime.date:
    """Today in the tenant's time zone (its month is the one its limits count)."""
    try:
        zone = zoneinfo.ZoneInfo(tenant.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return timezone.now().astimezone(zone).date()


def month_key(day: datetime.date) -> str:
    return f"{day:%Y-%m}"


def plan_of(tenant: Tenant) -> Plan | None:
    """The tenant's plan, read fresh (a plan the superadmin changed a moment ago counts now)."""
    plan_id = Tenant.objects.filter(pk=tenant.pk).values_list("plan_id", flat=True).first()
    return Plan.objects.filter(pk=plan_id).first() if plan_id else None


@dataclass(frozen=True)
class Limit:
    metric: str
    limit: int | None  # None: unlimited
    plan_limit: int | None
    override: LimitOverride | None


def limit_of(*, metric: str, tenant: Tenant | None = None, plan: Plan | None = None) -> Limit:
    """The limit in force: the newest override that applies today, else the plan's; no plan: unlimited."""
    found = _tenant(tenant)
    if found is None:
        return Limit(metric, None, None, None)
    plan = plan if plan is not None else plan_of(found)
    if plan is None:
        return Limit(metric, None, None, None)
    today = tenant_today(found)
    override = (
        LimitOverride.objects.filter(tenant=found, metric=metric)
        .filter(Q(until=None) | Q(until__gte=today))
        .order_by("-created_at", "-id")
        .first()
    )
    plan_limit = plan.limit(metric)
    return Limit(metric, override.limit if override else plan_limit, plan_limit, override)


def usage_month(*, metric: str, tenant: Tenant | None = None, day: datetime.date | None = None) -> int:
    """How much of a metered metric the tenant used in the month of `day` (default: this month)."""
    found = _tenant(tenant)
    if found is None:
        return 0
    day = day or tenant_today(found)
    total = UsageDay.objects.filter(tenant=found, metric=metric, day__gte=day.replace(day=1), day__lte=day).aggregate(
        total=Sum("amount")
    )["total"]
    return int(total or 0)


def usage_room(*, metric: str, pending: int = 0, tenant: Tenant | None = None) -> int | None:
    """How much more may be used this month (None: unlimited); `pending` is what is admitted and not yet
    metered (messages queued and not sent)."""
    limit = limit_of(metric=metric, tenant=tenant).limit
    if limit is None:
        return None
    return max(0, limit - usage_month(metric=metric, tenant=tenant) - pending)


LOCK_NAMESPACE = 0x5553  # pg_advisory_xact_lock(namespace, key): the first half of the two-int key


def limit_lock(*, metric: str, tenant: Tenant | None = None) -> None:
    """Serialise the check-then-admit of a limited metric for one tenant until the transaction ends, so two
    sends racing for the last unit cannot both see room. Only limited tenants take it (unlimited ones never
    check); it must be called inside the atomic block that also writes what it admits."""
    found = _tenant(tenant)
    if found is None:
        return
    if not connection.in_atomic_block:
        raise RuntimeError("limit_lock outside a transaction would be released at once")
    key = zlib.crc32(f"{found.pk}:{metric}".encode()) - 2**31  # a signed int4
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, key])


def limit_refusal(metric: str, limit: int) -> str:
    label = Metric(metric).label
    if metric in METERED:
        return _(
            "The plan's monthly limit of %(limit)s %(metric)s is reached: this is not sent. Ask the workspace "
            "owner for a larger plan, or wait for next month."
        ) % {"limit": limit, "metric": label}
    return _("The plan allows %(limit)s %(metric)s and that many exist already. Ask for a larger plan.") % {
        "limit": limit,
        "metric": label,
    }


def limit_check(*, metric: str, amount: int = 1, pending: int = 0, tenant: Tenant | None = None) -> None:
    """Refuse (LimitReached, code ``usage_limit``) what would take this month's use of `metric` past its limit."""
    limit = limit_of(metric=metric, tenant=tenant).limit
    if limit is None:
        return
    if usage_month(metric=metric, tenant=tenant) + pending + amount > limit:
        raise LimitReached(limit_refusal(metric, limit), code=LIMIT_CODE)


def count_check(
    *,
    metric: str,
    existing: int | Callable[[], int],
    adding: int = 1,
    tenant: Tenant | None = None,
    lock: bool = False,
) -> None:
    """Refuse a seat, channel or contact past the plan's number (`existing`: how many there are now, or a
    function that counts them). ``lock``: count under the limit's lock, held until the surrounding
    transaction (which also writes the new row) ends, so two made at once cannot pass the number."""
    limit = limit_of(metric=metric, tenant=tenant).limit
    if limit is None:
        return
    if lock:
        limit_lock(metric=metric, tenant=tenant)
    count = existing() if callable(existing) else existing
    if count + adding > limit:
        raise LimitReached(limit_refusal(metric, limit), code=LIMIT_CODE)


def count_room(*, metric: str, existing: int, tenant: Tenant | None = None) -> int | None:
    limit = limit_of(metric=metric, tenant=tenant).limit
    return None if limit is None else max(0, limit - existing)


def feature_enabled(feature: str, tenant: Tenant | None = None) -> bool:
    found = _tenant(tenant)
    if found is None:
        return True
    plan = plan_of(found)
    return plan is None or plan.has_feature(feature)


def features_of(tenant: Tenant | None = None) -> dict[str, bool]:
    """Every feature flag at once (the navigation hides what is off)."""
    found = _tenant(tenant)
    plan = plan_of(found) if found is not None else None
    return {f.value: plan is None or plan.has_feature(f.value) for f in Feature}


def feature_check(feature: str, tenant: Tenant | None = None) -> None:
    if not feature_enabled(feature, tenant):
        raise FeatureDisabled(feature)


# --- metering ---------------------------------------------------------------------------------------


def usage_add(*, metric: str, amount: int, tenant: Tenant | None = None, day: datetime.date | None = None) -> None:
    """Add to today's row of the metric (one upsert: concurrent workers never lose a count), then tell the
    owner when the month's use crossed 80% or 100% of the limit."""
    if amount <= 0:
        return
    found = _tenant(tenant)
    if found is None:
        return
    day = day or tenant_today(found)
    table = UsageDay._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO public.{table} AS u (tenant_id, day, metric, amount) VALUES (%s, %s, %s, %s) "  # noqa: S608 (our table)
            "ON CONFLICT (tenant_id, metric, day) DO UPDATE SET amount = u.amount + EXCLUDED.amount",
            [found.pk, day, metric, amount],
        )
    try:
        limit = limit_of(metric=metric, tenant=found).limit
        if limit is not None:
            used = usage_month(metric=metric, tenant=found, day=day)
            _alerts_for(found, metric, used - amount, used, limit, day)
    except Exception:  # metering stands whatever happens to the alert
        logger.exception("usage alert check failed for %s %s", found.schema_name, metric)


def _alert_key(metric: str, day: datetime.date) -> str:
    return f"{metric}:{month_key(day)}"


def _previous_month(day: datetime.date) -> datetime.date:
    return day.replace(day=1) - datetime.timedelta(days=1)


def _announce(tenant: Tenant, event: str, payload: dict[str, Any]) -> None:
    events.announce(event, tenant.schema_name, payload)


def _detail(metric: str, used: int, limit: int, day: datetime.date) -> dict[str, Any]:
    percent = 100 if limit == 0 else min(999, used * 100 // limit)
    return {"metric": metric, "used": used, "limit": limit, "percent": percent, "month": month_key(day)}


def _alerts_for(tenant: Tenant, metric: str, before: int, used: int, limit: int, day: datetime.date) -> None:
    """Raise on crossing 80% or 100% (once: the alerts app keeps one open alert per key)."""
    key = _alert_key(metric, day)
    near = limit * NEAR_PERCENT / 100
    if used >= limit and (before < limit or limit == 0):
        _announce(
            tenant,
            events.ALERT_RAISED,
            {"kind": ALERT_REACHED, "key": key, "detail": _detail(metric, used, limit, day)},
        )
        _announce(tenant, events.ALERT_CLEARED, {"kind": ALERT_NEAR, "key": key})
    elif near <= used < limit and before < near:
        _announce(
            tenant, events.ALERT_RAISED, {"kind": ALERT_NEAR, "key": key, "detail": _detail(metric, used, limit, day)}
        )


def usage_alerts_refresh(*, tenant: Tenant) -> None:
    """Bring the tenant's usage alerts in line with its use and limits now: after a plan change or an
    override (a raised limit clears them), and daily (last month's close at the month's turn)."""
    today = tenant_today(tenant)
    previous = _previous_month(today)
    plan = plan_of(tenant)
    for metric in METERED:
        for kind in (ALERT_NEAR, ALERT_REACHED):
            _announce(tenant, events.ALERT_CLEARED, {"kind": kind, "key": _alert_key(metric, previous)})
        key = _alert_key(metric, today)
        limit = limit_of(metric=metric, tenant=tenant, plan=plan).limit if plan is not None else None
        used = usage_month(metric=metric, tenant=tenant, day=today)
        reached = limit is not None and used >= limit
        near = limit is not None and not reached and used >= limit * NEAR_PERCENT / 100
        detail = _detail(metric, used, limit, today) if limit is not None else {}
        if reached:
            _announce(tenant, events.ALERT_RAISED, {"kind": ALERT_REACHED, "key": key, "detail": detail})
        else:
            _announce(tenant, events.ALERT_CLEARED, {"kind": ALERT_REACHED, "key": key})
        if near:
            _announce(tenant, events.ALERT_RAISED, {"kind": ALERT_NEAR, "key": key, "detail": detail})
        else:
            _announce(tenant, events.ALERT_CLEARED, {"kind": ALERT_NEAR, "key": key})


def usage_alerts_refresh_all() -> int:
    """Beat (daily): every tenant on a plan."""
    count = 0
    for tenant in Tenant.objects.exclude(schema_name="public").exclude(plan=None):
        usage_alerts_refresh(tenant=tenant)
        count += 1
    return count


# --- the superadmin's changes (audited) --------------------------------------------------------------


def tenant_plan_change(*, tenant: Tenant, plan: Plan | None, actor: Any) -> bool:
    """Move a tenant to another plan (None: no plan, unlimited). Audited; the usage alerts follow."""
    from accounts.audit import audit_record
    from accounts.models import AuditAction

    old = plan_of(tenant)
    if (old.pk if old else None) == (plan.pk if plan else None):
        return False
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(plan=plan)
        tenant.plan = plan
        audit_record(
            action=AuditAction.PLAN_CHANGED,
            actor=actor,
            target=tenant,
            tenant=tenant,
            metadata={"from": old.code if old else None, "to": plan.code if plan else None},
        )
        transaction.on_commit(lambda: usage_alerts_refresh(tenant=tenant))
        events.announce(events.PLAN_CHANGED, tenant.schema_name, {"tenant_id": tenant.pk})
    return True


def plan_saved(*, plan: Plan) -> None:
    """The superadmin edited a plan: every tenant on it hears PLAN_CHANGED (its features count now)."""
    for tenant_id, schema_name in Tenant.objects.filter(plan=plan).values_list("pk", "schema_name"):
        events.announce(events.PLAN_CHANGED, schema_name, {"tenant_id": tenant_id})


def limit_override_set(
    *,
    tenant: Tenant,
    metric: str,
    limit: int | None,
    reason: str,
    actor: Any,
    until: datetime.date | None = None,
    override: LimitOverride | None = None,
) -> LimitOverride:
    """Extend (or set) one limit of one tenant. Audited; the usage alerts follow (a raised limit clears them)."""
    from accounts.audit import audit_record
    from accounts.models import AuditAction

    if not reason.strip():
        raise ValidationError(_("Say why the limit is changed."))
    before = limit_of(metric=metric, tenant=tenant).limit
    with transaction.atomic():
        if override is None:
            override = LimitOverride(tenant=tenant)
        override.metric, override.limit, override.until, override.reason = metric, limit, until, reason.strip()
        override.set_by = actor if getattr(actor, "is_authenticated", False) else None
        override.save()
        audit_record(
            action=AuditAction.LIMIT_OVERRIDE,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            target=override,
            tenant=tenant,
            metadata={
                "metric": metric,
                "from": before,
                "to": limit,
                "until": until.isoformat() if until else None,
                "reason": reason.strip()[:200],
            },
        )
        transaction.on_commit(lambda: usage_alerts_refresh(tenant=tenant))
    return override


# --- what the owner's usage page reads ---------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    metric: str
    label: str
    used: int
    limit: int | None  # None: unlimited
    percent: int | None  # of the limit, capped at 100 for the bar (None: unlimited)
    metered: bool  # per month (else: how many exist now)
    series: list[int]  # the last days, oldest first (metered only)


def usage_series(*, metric: str, tenant: Tenant, days: int = 30) -> tuple[list[datetime.date], list[int]]:
    """The daily use of the last `days` days (the tenant's days, today included), zeros where none."""
    today = tenant_today(tenant)
    first = today - datetime.timedelta(days=days - 1)
    amounts = dict(
        UsageDay.objects.filter(tenant=tenant, metric=metric, day__gte=first, day__lte=today).values_list(
            "day", "amount"
        )
    )
    span = [first + datetime.timedelta(days=i) for i in range(days)]
    return span, [int(amounts.get(day, 0)) for day in span]


def usage_overview(*, tenant: Tenant, counts: dict[str, int], days: int = 30) -> list[UsageRow]:
    """Every limit of the plan with this month's use (metered) or how many exist (`counts`: seats,
    channels, contacts, counted by the caller in the tenant's schema)."""
    plan = plan_of(tenant)
    rows = []
    for metric in Metric:
        metered = metric in METERED
        used = usage_month(metric=metric, tenant=tenant) if metered else int(counts.get(metric.value, 0))
        limit = limit_of(metric=metric, tenant=tenant, plan=plan).limit if plan is not None else None
        percent = None if limit is None else (100 if limit == 0 else min(100, used * 100 // limit))
        series = usage_series(metric=metric, tenant=tenant, days=days)[1] if metered else []
        rows.append(UsageRow(metric.value, str(metric.label), used, limit, percent, metered, series))
    return rows


def features_list(tenant: Tenant) -> list[tuple[Feature, bool]]:
    flags = features_of(tenant)
    return [(feature, flags[feature.value]) for feature in Feature]
