from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import Membership


class IsTenantMember(BasePermission):
    """The caller is authenticated and a member of the tenant the request is for."""

    def has_permission(self, request: Request, view: Any) -> bool:
        tenant = getattr(request, "tenant", None)
        user = request.user
        if tenant is None or not user or not user.is_authenticated:
            return False
        membership = Membership.objects.filter(user=user, tenant=tenant).first()
        request.membership = membership  # type: ignore[attr-defined]
        return membership is not None


class IsTenantManager(IsTenantMember):
    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.membership.is_manager  # type: ignore[attr-defined]
