from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiToken, AuditAction, AuditEntry, Invitation, Membership, User
from tenants.models import Tenant


def membership_get(*, user: User, tenant: Tenant) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, tenant=tenant).select_related("tenant").first()


def memberships_of(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user, tenant__is_active=True)
        .exclude(tenant__schema_name="public")
        .select_related("tenant")
        .order_by("tenant__name")
    )


def members_of(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__email")


def invitations_pending(*, tenant: Tenant) -> QuerySet[Invitation]:
    return Invitation.objects.filter(tenant=tenant, accepted_at=None, revoked_at=None)


def api_tokens_of(*, user: User, tenant: Tenant) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user, tenant=tenant, revoked_at=None)


def audit_entries_of(*, tenant: Tenant, action: str = "") -> QuerySet[AuditEntry]:
    """The workspace's audit log, newest first; `action` narrows it to one kind (unknown kinds: none)."""
    entries = AuditEntry.objects.filter(tenant=tenant).select_related("actor")
    if action:
        entries = entries.filter(action=action if action in AuditAction.values else "-")
    return entries.order_by("-created_at", "-id")
