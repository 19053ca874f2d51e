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
