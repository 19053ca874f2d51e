from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

from accounts.selectors import membership_get

SESSION_TENANT_KEY = "tenant_schema"


class TenantMembershipMiddleware:
    """On a tenant domain, a logged-in user must be a member of that tenant and must have logged in
    there: a session made on another tenant (or for a removed member) is ended."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        request.membership = None  # type: ignore[attr-defined]
        if tenant is not None and tenant.schema_name != "public" and request.user.is_authenticated:
            membership = membership_get(user=request.user, tenant=tenant)  # type: ignore[arg-type]
            if membership is None or request.session.get(SESSION_TENANT_KEY) != tenant.schema_name:
                logout(request)
            else:
                request.membership = membership  # type: ignore[attr-defined]
        return self.get_response(request)
