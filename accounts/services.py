"""Writes on accounts: signup, invitations, API tokens, the login hand-off, login throttling."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import ApiToken, AuditAction, Invitation, Membership, Role, User
from core import realtime
from core.redis import redis_client
from core.roles import Action, permission_check
from tenants import usage
from tenants.models import Metric, Tenant
from tenants.services import tenant_create, tenant_url

HANDOFF_SALT = "accounts.handoff"


def _invitations_open(tenant: Tenant) -> QuerySet[Invitation]:
    """Invitations that may still be accepted: each holds a seat."""
    return Invitation.objects.filter(tenant=tenant, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())


def _sha256(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# --- users and workspaces -------------------------------------------------------------------


def user_create(*, email: str, password: str | None, name: str = "") -> User:
    return User.objects.create_user(email=email, password=password, name=name)


def membership_ensure(*, user: User, tenant: Tenant, role: str) -> Membership:
    membership, created = Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def workspace_signup(
    *,
    company_name: str,
    slug: str,
    email: str,
    password: str | None,
    name: str = "",
    language: str = "pt-br",
    existing_user: User | None = None,
) -> tuple[Tenant, User]:
    """A new business signs up: tenant (schema + domain) and its owner. Raises ValidationError."""
    email = email.strip().lower()
    if existing_user is None and User.objects.filter(email=email).exists():
        raise ValidationError(_("An account with this email already exists. Sign in to create a workspace."))
    tenant = tenant_create(name=company_name, slug=slug, language=language)
    user = existing_user or user_create(email=email, password=password, name=name)
    membership_ensure(user=user, tenant=tenant, role=Role.OWNER)
    if existing_user is None:
        email_verification_send(user=user)
    return tenant, user


# --- email verification -----------------------------------------------------------------------

VERIFY_SALT = "accounts.verify-email"


def email_verified_mark(*, user: User) -> None:
    """The person proved they read this inbox (invitation link, password reset, verification link)."""
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        User.objects.filter(pk=user.pk, email_verified_at=None).update(email_verified_at=user.email_verified_at)
    email_address_sync(user=user)


def email_address_sync(*, user: User) -> None:
    """Tell allauth too: when it links a social login by email it wipes the password of an account whose
    address it does not know as verified (its guard against pre-registered accounts)."""
    from allauth.account.models import EmailAddress

    if user.email_verified_at is None:
        return
    EmailAddress.objects.update_or_create(
        user=user, email=user.email.lower(), defaults={"verified": True, "primary": True}
    )


def email_is_verified(*, user: User, email: str) -> bool:
    """Did this user prove `email` is theirs, here or through a provider that vouched for it?"""
    from allauth.account.models import EmailAddress

    if user.email.lower() == email.strip().lower() and user.email_verified_at is not None:
        return True
    return EmailAddress.objects.filter(user=user, email__iexact=email.strip(), verified=True).exists()


def email_verification_send(*, user: User) -> None:
    """Mail a signed link that marks the address verified (self-service signup)."""
    from tenants.services import public_url

    token = signing.dumps({"u": user.pk, "e": user.email}, salt=VERIFY_SALT, compress=True)
    link = public_url(f"/verify-email/{token}/")
    send_mail(
        subject=_("Confirm your email address"),
        message=render_to_string("accounts/email/verify_email.txt", {"user": user, "link": link}),
        from_email=None,
        recipient_list=[user.email],
    )


def email_verification_confirm(*, token: str) -> User | None:
    """The user the link was made for, now verified; None for a bad, old or outdated link."""
    try:
        payload = signing.loads(token, salt=VERIFY_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE_S)
    except signing.BadSignature:
        return None
    user = User.objects.filter(pk=payload.get("u"), is_active=True).first()
    if user is None or user.email.lower() != str(payload.get("e", "")).lower():
        return None  # the address changed since the link was sent
    email_verified_mark(user=user)
    return user


# --- invitations ----------------------------------------------------------------------------


def invitation_create(*, tenant: Tenant, email: str, role: str, invited_by: User) -> tuple[Invitation, str]:
    """Make an invitation and email its link. Returns the invitation and the raw token."""
    actor = Membership.objects.filter(user=invited_by, tenant=tenant).first()
    permission_check(actor, Action.MEMBER_INVITE)
    if role == Role.OWNER:  # an admin cannot bring in an owner (possibly themselves under another address)
        permission_check(actor, Action.OWNER_MANAGE)
    email = email.strip().lower()
    if Membership.objects.filter(tenant=tenant, user__email=email).exists():
        raise ValidationError(_("This person is already a member."))

    def seats() -> int:  # the plan's seats: members and open invitations
        return Membership.objects.filter(tenant=tenant).count() + _invitations_open(tenant).exclude(email=email).count()

    raw = secrets.token_urlsafe(32)
    with transaction.atomic():  # counted under the limit's lock until the invitation is written
        usage.count_check(metric=Metric.SEATS, existing=seats, tenant=tenant, lock=True)
        invitation = Invitation.objects.create(
            tenant=tenant,
            email=email,
            role=role,
            token_hash=_sha256(raw),
            invited_by=invited_by,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_MAX_AGE_DAYS),
        )
    link = tenant_url(tenant, f"/invite/{raw}/")
    context = {"tenant": tenant, "link": link, "invited_by": invited_by, "days": settings.INVITATION_MAX_AGE_DAYS}
    send_mail(
        subject=_("You are invited to %(tenant)s") % {"tenant": tenant.name},
        message=render_to_string("accounts/email/invitation.txt", context),
        from_email=None,
        recipient_list=[email],
    )
    return invitation, raw


def invitation_by_token(*, tenant: Tenant, raw_token: str) -> Invitation | None:
    invitation = Invitation.objects.filter(tenant=tenant, token_hash=_sha256(raw_token)).first()
    return invitation if invitation and invitation.is_usable else None


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    if user.email.lower() != invitation.email.lower():
        raise ValidationError(_("This invitation was sent to another email address."))
    updated = Invitation.objects.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
        accepted_at=timezone.now()
    )
    if updated != 1:
        raise ValidationError(_("This invitation has already been used."))
    email_verified_mark(user=user)  # the link reached this inbox
    return membership_ensure(user=user, tenant=invitation.tenant, role=invitation.role)


def invitation_revoke(*, invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk, accepted_at=None).update(revoked_at=timezone.now())


def _refuse_removing_last_owner(membership: Membership) -> None:
    others = Membership.objects.filter(tenant=membership.tenant, role=Role.OWNER).exclude(pk=membership.pk)
    if membership.role == Role.OWNER and not others.exists():
        raise ValidationError(_("A workspace needs at least one owner."))


def _same_tenant(actor: Membership, membership: Membership) -> None:
    if actor.tenant_id != membership.tenant_id:
        raise PermissionDenied("membership of another workspace")


@transaction.atomic
def membership_remove(*, actor: Membership, membership: Membership) -> None:
    """Remove a member (their API tokens are revoked and their live sockets closed). Only an owner
    removes an owner. Raises PermissionDenied or ValidationError."""
    _same_tenant(actor, membership)
    permission_check(actor, Action.MEMBER_REMOVE)
    if membership.role == Role.OWNER:
        permission_check(actor, Action.OWNER_MANAGE)
    _refuse_removing_last_owner(membership)
    audit_record(action=AuditAction.MEMBER_REMOVED, target=membership.user, tenant=membership.tenant)
    ApiToken.objects.filter(user=membership.user, tenant=membership.tenant, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    schema, user_id = membership.tenant.schema_name, membership.user_id
    membership.delete()
    transaction.on_commit(lambda: realtime.member_sockets_close(schema, user_id))


@transaction.atomic
def membership_set_role(*, actor: Membership, membership: Membership, role: str) -> None:
    """Change a member's role. Making someone owner, or demoting an owner, is an owner's call (an admin
    cannot promote themselves); ownership itself moves with ownership_transfer. Raises PermissionDenied
    or ValidationError."""
    _same_tenant(actor, membership)
    permission_check(actor, Action.MEMBER_ROLE_CHANGE)
    if role not in Role.values:
        raise ValidationError(_("Unknown role."))
    if role == Role.OWNER or membership.role == Role.OWNER:
        permission_check(actor, Action.OWNER_MANAGE)
    if role == membership.role:
        return
    if role != Role.OWNER:
        _refuse_removing_last_owner(membership)
    audit_record(
        action=AuditAction.ROLE_CHANGED,
        target=membership.user,
        tenant=membership.tenant,
        metadata={"from": membership.role, "to": role},
    )
    membership.role = role
    membership.save(update_fields=["role"])
    schema, user_id = membership.tenant.schema_name, membership.user_id
    transaction.on_commit(lambda: realtime.member_sockets_refresh(schema, user_id))


@transaction.atomic
def ownership_transfer(*, actor: Membership, to: Membership) -> Membership:
    """The owner hands the workspace to another member: they become owner, the actor becomes admin.
    Returns the new owner's membership. Raises PermissionDenied or ValidationError."""
    _same_tenant(actor, to)
    permission_check(actor, Action.OWNERSHIP_TRANSFER)
    # Lock both rows: two transfers at once must not leave two (or no) owners.
    locked = {m.pk: m for m in Membership.objects.select_for_update().filter(pk__in=[actor.pk, to.pk])}
    actor_now, to_now = locked.get(actor.pk), locked.get(to.pk)
    if actor_now is None or to_now is None:
        raise ValidationError(_("This person is no longer a member."))
    permission_check(actor_now, Action.OWNERSHIP_TRANSFER)
    if actor_now.pk == to_now.pk:
        raise ValidationError(_("You already own this workspace."))
    Membership.objects.filter(pk=to_now.pk).update(role=Role.OWNER)
    Membership.objects.filter(pk=actor_now.pk).update(role=Role.ADMIN)
    for member, before, after in ((to_now, to_now.role, Role.OWNER), (actor_now, actor_now.role, Role.ADMIN)):
        audit_record(
            action=AuditAction.ROLE_CHANGED,
            target=member.user,
            tenant=actor.tenant,
            metadata={"from": before, "to": after, "ownership_transfer": True},
        )
    actor.role, to.role = Role.ADMIN, Role.OWNER
    schema = actor.tenant.schema_name
    for user_id in (actor.user_id, to.user_id):
        transaction.on_commit(lambda user_id=user_id: realtime.member_sockets_refresh(schema, user_id))  # type: ignore[misc]
    return to


# --- API tokens -----------------------------------------------------------------------------


def api_token_create(*, user: User, tenant: Tenant, name: str) -> tuple[ApiToken, str]:
    """Returns the token row and the raw key, which is shown once and never stored."""
    for _attempt in range(5):
        prefix = secrets.token_hex(4)
        raw = f"cp_{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user, tenant=tenant, name=name, prefix=prefix, token_hash=_sha256(raw)
                )
            audit_record(action=AuditAction.TOKEN_CREATED, target=token, tenant=tenant, metadata={"owner": user.email})
            return token, raw
        except IntegrityError:
            continue
    raise RuntimeError("could not allocate a unique token prefix")


def api_token_revoke(*, token: ApiToken) -> None:
    if ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now()):
        audit_record(
            action=AuditAction.TOKEN_REVOKED, target=token, tenant=token.tenant, metadata={"owner": token.user.email}
        )


LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_token_authenticate(*, raw: str, tenant: Tenant) -> ApiToken | None:
    """The live token this key names in this tenant, or None. Records when it was last used."""
    parts = raw.split("_")
    if len(parts) < 3 or parts[0] != "cp":
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=parts[1], tenant=tenant, revoked_at=None, user__is_active=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.token_hash, _sha256(raw)):
        return None
    if not Membership.objects.filter(user=token.user, tenant=tenant).exists():
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # at most one write a minute
        token.last_used_at = now
    return token


# --- the login hand-off from the main domain to a tenant domain ------------------------------


def handoff_token_make(*, user: User, tenant: Tenant) -> str:
    """A signed, one-time token valid for HANDOFF_MAX_AGE_S that logs `user` in on `tenant`."""
    payload = {"u": user.pk, "t": tenant.schema_name, "n": secrets.token_urlsafe(12)}
    return signing.dumps(payload, salt=HANDOFF_SALT, compress=True)


def handoff_token_consume(*, token: str, tenant: Tenant) -> User | None:
    try:
        payload = signing.loads(token, salt=HANDOFF_SALT, max_age=settings.HANDOFF_MAX_AGE_S)
    except signing.BadSignature:
        return None
    if payload.get("t") != tenant.schema_name:
        return None
    # One use only: the nonce is remembered for as long as the token could be valid.
    if not cache.add(f"handoff:{payload['n']}", 1, timeout=settings.HANDOFF_MAX_AGE_S + 5):
        return None
    user = User.objects.filter(pk=payload.get("u"), is_active=True).first()
    if user is None or not Membership.objects.filter(user=user, tenant=tenant).exists():
        return None
    return user


# --- throttling (login, password reset) -----------------------------------------------------
# Counters live in Redis directly, not in the cache: cache keys carry the tenant schema, and a per-tenant
# count would let an attacker spread guesses for one email over every workspace. These keys are global,
# named by a hash of the normalised email (never the email itself) and, separately, by the address.


@dataclass(frozen=True)
class ThrottleKeys:
    email: str
    ip: str

    @classmethod
    def of(cls, *, scope: str, email: str, ip: str) -> ThrottleKeys:
        return cls(f"throttle:{scope}:e:{_sha256(email.strip().lower())}", f"throttle:{scope}:ip:{_sha256(ip)}")


def _throttle_count(*keys: str) -> list[int]:
    values = redis_client().mget(keys)
    return [int(v or 0) for v in values]


def _throttle_hit(keys: ThrottleKeys, window_s: int) -> None:
    pipe = redis_client().pipeline()
    for key in (keys.email, keys.ip):
        pipe.set(key, 0, ex=window_s, nx=True)  # the window starts at the first hit
        pipe.incr(key)
    pipe.execute()


def login_throttle_blocked(*, email: str, ip: str) -> bool:
    keys = ThrottleKeys.of(scope="login", email=email, ip=ip)
    by_email, by_ip = _throttle_count(keys.email, keys.ip)
    limit = settings.LOGIN_THROTTLE_ATTEMPTS
    return by_email >= limit or by_ip >= limit * 4


def login_throttle_failed(*, email: str, ip: str) -> None:
    _throttle_hit(ThrottleKeys.of(scope="login", email=email, ip=ip), settings.LOGIN_THROTTLE_WINDOW_S)


def login_throttle_reset(*, email: str, ip: str) -> None:
    redis_client().delete(ThrottleKeys.of(scope="login", email=email, ip=ip).email)


def password_reset_throttle_allows(*, email: str, ip: str) -> bool:
    """Count a reset request; False once this email or address asked too often in the window."""
    keys = ThrottleKeys.of(scope="reset", email=email, ip=ip)
    by_email, by_ip = _throttle_count(keys.email, keys.ip)
    limit = settings.PASSWORD_RESET_THROTTLE_ATTEMPTS
    if by_email >= limit or by_ip >= limit * 4:
        return False
    _throttle_hit(keys, settings.LOGIN_THROTTLE_WINDOW_S)
    return True
