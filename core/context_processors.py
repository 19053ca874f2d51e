from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def shell(request: HttpRequest) -> dict[str, Any]:
    """What the page shell needs: the tenant and the member's role."""
    tenant = getattr(request, "tenant", None)
    membership = getattr(request, "membership", None)
    return {
        "current_tenant": tenant if tenant is not None and tenant.schema_name != "public" else None,
        "membership": membership,
    }
