from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import Membership
from core.roles import Action, role_allows

logger = logging.getLogger(__name__)


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
    """Owners and admins, with no action named: kept for code written before the role table. Prefer
    `required_actions` (RequiresAction); tests/accounts/test_roles.py refuses endpoints that name none."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.membership.is_manager  # type: ignore[attr-defined]


def crud_actions(*, read: Action, write: Action, delete: Action | None = None) -> dict[str, Action]:
    """The usual viewset actions mapped onto the role table."""
    return {
        "list": read,
        "retrieve": read,
        "create": write,
        "update": write,
        "partial_update": write,
        "destroy": delete or write,
    }


def required_action(view: Any, request: Request) -> Action | None:
    """The table action this API call needs: `view.required_actions[<viewset action or method>]`."""
    mapping: Mapping[str, Action] = getattr(view, "required_actions", {})
    key = getattr(view, "action", None) or str(request.method).lower()
    return mapping.get(key)


class RequiresAction(IsTenantMember):
    """The API's one permission (the default): the caller is a member and the role table (core.roles)
    allows what this endpoint does. Each view maps its viewset actions (or HTTP methods) onto table
    actions in `required_actions`; an endpoint that names none is refused, so a new one cannot slip by."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if getattr(view, "action", None) == "metadata":  # OPTIONS: describes the endpoint, reads nothing
            return True
        action = required_action(view, request)
        if action is None:
            logger.error("API view %s has no role-table action for %s", type(view).__name__, request.method)
            return False
        return role_allows(request.membership, action)  # type: ignore[attr-defined]
