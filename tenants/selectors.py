from __future__ import annotations

import time

from django.conf import settings

from tenants.models import Domain, Tenant
from tenants.services import public_tenant

_PUBLIC_CACHE: dict[str, tuple[float, Tenant]] = {}
PUBLIC_CACHE_S = 30.0


def tenant_for_hostname(hostname: str) -> Tenant | None:
    """The tenant a Host header names: the public tenant for the main domain, None if unknown."""
    hostname = hostname.split(":", 1)[0].lower().rstrip(".")
    if hostname in (settings.BASE_DOMAIN, "127.0.0.1"):
        # The main domain takes every provider webhook: its tenant row is read once per process.
        cached = _PUBLIC_CACHE.get("public")
        if cached is None or time.monotonic() - cached[0] > PUBLIC_CACHE_S:
            cached = (time.monotonic(), public_tenant())
            _PUBLIC_CACHE["public"] = cached
        return cached[1]
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant if domain else None


def tenant_current() -> Tenant:
    """The tenant whose schema the connection is in (a real row, also under schema_context)."""
    from django.db import connection

    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    return Tenant.objects.get(schema_name=connection.schema_name)  # type: ignore[attr-defined]


def tenant_is_active(schema_name: str | None = None) -> bool:
    """Whether the tenant (the connection's, by default) may send and act. Read fresh from the database,
    never from a cached row: a worker must see a suspension made a moment ago."""
    from django.db import connection

    schema = schema_name or connection.schema_name  # type: ignore[attr-defined]
    return Tenant.objects.filter(schema_name=schema, is_active=True).exists()
