from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from core.roles import Action, role_allows


class Can:
    """`{% if can.contact_export %}`: what the role table lets this member do, for showing controls."""

    def __init__(self, role: str | None) -> None:
        self.role = role

    def __getitem__(self, name: str) -> bool:
        try:
            return role_allows(self.role, Action[name.upper()])
        except KeyError:
            raise KeyError(name) from None  # a typo in a template shows, it does not silently hide a control


def shell(request: HttpRequest) -> dict[str, Any]:
    """What the page shell needs: the tenant, the member's role and what it allows."""
    tenant = getattr(request, "tenant", None)
    membership = getattr(request, "membership", None)
    return {
        "current_tenant": tenant if tenant is not None and tenant.schema_name != "public" else None,
        "membership": membership,
        "can": Can(getattr(membership, "role", None)),
    }
