"""The audit log of sensitive actions: who did what to which thing, from where, in which workspace.

Services call ``audit_record`` in one line; the acting user, address and request id come from the request
being served (``AuditContextMiddleware``), or are passed in explicitly (admin hooks, tasks).
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse

from accounts.models import AuditAction, AuditEntry, User
from core.logging import request_id_var
from tenants.models import Tenant

logger = logging.getLogger(__name__)

_current_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("audit_request", default=None)

# Keys never copied into an entry's metadata, whatever a caller passes.
SECRET_KEYS = frozenset({"password", "token", "key", "secret", "api_key", "access_token", "auth_token", "credentials"})


def client_ip(request: HttpRequest) -> str:
    """The peer address, or "" when there is none that parses (the server sets REMOTE_ADDR, behind a
    proxy from its forwarded-for header when told to trust it)."""
    try:
        return str(ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", ""))))
    except ValueError:
        return ""


class AuditContextMiddleware:
    """Makes the request being served known to ``audit_record`` without passing it through services."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def _current_tenant() -> Tenant | None:
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.schema_name != "public":
        return tenant
    return None


def _clean(metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if k.lower() not in SECRET_KEYS}


def audit_record(
    *,
    action: str,
    target: Any = None,
    target_type: str = "",
    target_id: str | int = "",
    target_label: str = "",
    metadata: dict[str, Any] | None = None,
    actor: User | None = None,
    actor_label: str = "",
    tenant: Tenant | None = None,
    request: HttpRequest | None = None,
) -> AuditEntry:
    """Write one audit entry. ``target`` (a model instance) fills type, id and label; the actor, address
    and request id default to the current request's; the tenant to the current schema's."""
    if action not in AuditAction.values:
        raise ValueError(f"unknown audit action {action!r}")
    request = request or _current_request.get()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if isinstance(user, User) and user.is_authenticated else None
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        target_label = target_label or str(target)
    return AuditEntry.objects.create(
        tenant=tenant or _current_tenant(),
        actor=actor,
        actor_label=(actor.email if actor is not None else actor_label)[:254],
        action=action,
        target_type=target_type[:60],
        target_id=str(target_id)[:64],
        target_label=target_label[:200],
        ip=(client_ip(request) or None) if request is not None else None,
        request_id=request_id_var.get() if request_id_var.get() != "-" else "",
        metadata=_clean(metadata),
    )


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    """Every successful sign-in (password, hand-off, social, superadmin), from Django's signal."""
    backend = getattr(user, "backend", "") or ""
    audit_record(
        action=AuditAction.LOGIN,
        actor=user,
        target=user,
        request=request,
        metadata={"backend": backend.rsplit(".", 1)[-1]},
    )


def _model_label(entry: Any) -> str:
    model = entry.content_type.model_class() if entry.content_type_id else None
    return model._meta.label_lower if model is not None else ""


def on_admin_log_entry(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """Superadmin changes made in the Django admin (its LogEntry rows, also written by our admin actions)
    become audit entries, in the workspace they touched when there is one."""
    if not created:
        return
    tenant: Tenant | None = None
    try:
        edited = instance.get_edited_object()
    except Exception:
        edited = None
    if isinstance(edited, Tenant):
        tenant = edited if instance.action_flag != 3 else None  # a deleted tenant's entries go with it
    elif edited is not None and isinstance(getattr(edited, "tenant", None), Tenant):
        tenant = edited.tenant
    verb = {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, str(instance.action_flag))
    audit_record(
        action=AuditAction.SUPERADMIN,
        actor=instance.user,
        target_type=_model_label(instance),
        target_id=instance.object_id or "",
        target_label=instance.object_repr,
        tenant=tenant if tenant is not None and tenant.schema_name != "public" else None,
        metadata={"change": verb, "message": instance.get_change_message()[:500]},
    )
