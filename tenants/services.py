"""Writes on tenants: provisioning, suspension."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import get_public_schema_name

from core import events
from tenants.models import Domain, Plan, Tenant

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
RESERVED_SLUGS = frozenset(
    {"www", "admin", "api", "app", "public", "static", "media", "mail", "help", "status", "ws", "auth"}
)


def slug_validate(slug: str) -> None:
    if not SLUG_RE.match(slug) or "--" in slug:
        raise ValidationError(
            _("Use 3 to 40 lowercase letters, digits or hyphens, starting with a letter."), code="invalid"
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg"):
        raise ValidationError(_("This subdomain is reserved."), code="reserved")
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError(_("This subdomain is already taken."), code="taken")


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def tenant_domain(slug: str) -> str:
    return f"{slug}.{settings.BASE_DOMAIN}"


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    """Absolute URL of a page on the tenant's own domain."""
    port = f":{settings.BASE_PORT}" if settings.BASE_PORT else ""
    return f"{settings.BASE_SCHEME}://{tenant_domain(tenant.slug)}{port}{path}"


def public_url(path: str = "/") -> str:
    port = f":{settings.BASE_PORT}" if settings.BASE_PORT else ""
    return f"{settings.BASE_SCHEME}://{settings.BASE_DOMAIN}{port}{path}"


def public_tenant() -> Tenant:
    """The row for the public schema (main site); made on first use."""
    tenant = Tenant.objects.filter(schema_name=get_public_schema_name()).first()
    if tenant is None:
        tenant = Tenant(schema_name=get_public_schema_name(), name="Platform", slug="public")
        tenant.auto_create_schema = False
        tenant.save()
    return tenant


def plan_default() -> Plan | None:
    """The plan a new sign-up starts on: the active one marked default (else "free", if it exists)."""
    return (
        Plan.objects.filter(is_active=True, is_default=True).order_by("price_monthly", "pk").first()
        or Plan.objects.filter(code="free").first()
    )


def tenant_create(
    *,
    name: str,
    slug: str,
    plan_code: str | None = "",
    language: str = "pt-br",
    timezone_name: str | None = None,
) -> Tenant:
    """Create the tenant row, its schema (migrated) and its domain. Raises ValidationError on a bad slug.
    `plan_code` "" takes the default plan (the one marked for new sign-ups); None, no plan (unlimited)."""
    slug_validate(slug)
    plan = plan_default() if plan_code == "" else Plan.objects.filter(code=plan_code).first() if plan_code else None
    tenant = Tenant(
        name=name,
        slug=slug,
        schema_name=schema_name_for(slug),
        plan=plan,
        language=language,
        timezone=timezone_name or settings.DEFAULT_TENANT_TIMEZONE,
    )
    tenant.save(verbosity=0)  # creates and migrates the schema
    Domain.objects.create(domain=tenant_domain(slug), tenant=tenant, is_primary=True)
    return tenant


@transaction.atomic
def tenant_suspend(*, tenant: Tenant, reason: str = "") -> None:
    """Stop the tenant: its pages and API answer 403, and nothing leaves on its behalf (sends are refused,
    queued messages, campaigns and cadences wait). Provider events keep being stored, unapplied."""
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False, suspended_at=timezone.now(), suspended_reason=reason)
    tenant.refresh_from_db()


@transaction.atomic
def tenant_reactivate(*, tenant: Tenant) -> None:
    """Open the tenant again; after commit, what waited goes on (held events applied, queued messages sent,
    running campaigns and cadences resumed) through the TENANT_REACTIVATED subscribers."""
    reopened = Tenant.objects.filter(pk=tenant.pk, is_active=False).update(
        is_active=True, suspended_at=None, suspended_reason=""
    )
    tenant.refresh_from_db()
    if reopened:  # an active tenant has nothing waiting
        events.announce(events.TENANT_REACTIVATED, tenant.schema_name, {"tenant_id": tenant.pk})


def tenant_update_settings(*, tenant: Tenant, name: str, language: str, timezone_name: str) -> None:
    tenant.name, tenant.language, tenant.timezone = name, language, timezone_name
    tenant.save(update_fields=["name", "language", "timezone"])
