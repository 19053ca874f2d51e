from __future__ import annotations

from django.conf import settings

from tenants.models import Domain, Tenant
from tenants.services import public_tenant


def tenant_for_hostname(hostname: str) -> Tenant | None:
    """The tenant a Host header names: the public tenant for the main domain, None if unknown."""
    hostname = hostname.split(":", 1)[0].lower().rstrip(".")
    if hostname in (settings.BASE_DOMAIN, "127.0.0.1"):
        return public_tenant()
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant if domain else None


def tenant_current() -> Tenant:
    """The tenant whose schema the connection is in (a real row, also under schema_context)."""
    from django.db import connection

    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    return Tenant.objects.get(schema_name=connection.schema_name)  # type: ignore[attr-defined]
