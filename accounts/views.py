"""Staff-facing pages on a tenant domain: login, hand-off, invitations, team, API tokens, settings."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.audit import client_ip
from accounts.decorators import action_required
from accounts.forms import (
    AcceptInviteForm,
    ApiTokenForm,
    InviteForm,
    LoginForm,
    OwnershipTransferForm,
    RoleForm,
    TenantSettingsForm,
)
from accounts.middleware import SESSION_TENANT_KEY
from accounts.models import AuditAction, Invitation, Membership, User
from accounts.selectors import api_tokens_of, audit_entries_of, invitations_pending, members_of
from accounts.services import (
    api_token_create,
    api_token_revoke,
    email_verified_mark,
    handoff_token_consume,
    invitation_accept,
    invitation_by_token,
    invitation_create,
    invitation_revoke,
    membership_remove,
    membership_set_role,
    ownership_transfer,
    password_reset_throttle_allows,
    user_create,
)
from core.contributions import MEDIA_GUARD, collect
from core.media import MEDIA_CSP, filename_clean, served_type
from core.roles import Action, role_allows
from tenants.services import public_url, tenant_update_settings

logger = logging.getLogger(__name__)


def social_providers() -> list[str]:
    return sorted(settings.SOCIALACCOUNT_PROVIDERS)


def tenant_login(request: HttpRequest, user: User) -> None:
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_TENANT_KEY] = request.tenant.schema_name  # type: ignore[attr-defined]


def _safe_next(request: HttpRequest, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    return target if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}) else default


def login_view(request: HttpRequest) -> HttpResponse:
    if getattr(request, "membership", None) is not None:
        return redirect(_safe_next(request))
    form = LoginForm(request, data=request.POST or None, tenant=request.tenant)  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid():
        assert form.user is not None
        tenant_login(request, form.user)
        return redirect(_safe_next(request))
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": _safe_next(request, ""), "providers": social_providers()},
        status=400 if form.errors else 200,
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, _("You have signed out."))
    return redirect("login")


def handoff_finish(request: HttpRequest) -> HttpResponse:
    """Arrival on the tenant domain from the main domain (signup, OAuth, workspace chooser)."""
    user = handoff_token_consume(token=request.GET.get("token", ""), tenant=request.tenant)  # type: ignore[attr-defined]
    if user is None:
        messages.error(request, _("That sign-in link has expired or was already used. Please sign in again."))
        return redirect("login")
    tenant_login(request, user)
    return redirect("home")


def social_start(request: HttpRequest, provider: str) -> HttpResponse:
    """OAuth always runs on the main domain (one redirect URI); it hands the user back here."""
    if provider not in settings.SOCIALACCOUNT_PROVIDERS:
        raise Http404
    query = urlencode({"tenant": request.tenant.slug})  # type: ignore[attr-defined]
    return redirect(public_url(f"/auth/social/{provider}/?{query}"))


def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_by_token(tenant=request.tenant, raw_token=token)  # type: ignore[attr-defined]
    if invitation is None:
        return render(request, "accounts/invite_invalid.html", status=404)
    existing = User.objects.filter(email=invitation.email).first()
    if existing is not None:
        return _accept_as_existing_user(request, invitation, existing)
    form = AcceptInviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_create(
            email=invitation.email, password=form.cleaned_data["password"], name=form.cleaned_data["name"]
        )
        invitation_accept(invitation=invitation, user=user)
        tenant_login(request, user)
        messages.success(request, _("Welcome to %(tenant)s!") % {"tenant": invitation.tenant.name})
        return redirect("home")
    return render(request, "accounts/invite_accept.html", {"form": form, "invitation": invitation})


def _accept_as_existing_user(request: HttpRequest, invitation: Invitation, user: User) -> HttpResponse:
    form = LoginForm(request, data=request.POST or None, initial={"email": user.email})
    if request.method == "POST" and form.is_valid():
        assert form.user is not None
        try:
            invitation_accept(invitation=invitation, user=form.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            tenant_login(request, form.user)
            messages.success(request, _("Welcome to %(tenant)s!") % {"tenant": invitation.tenant.name})
            return redirect("home")
    return render(request, "accounts/invite_login.html", {"form": form, "invitation": invitation})


class TenantPasswordResetForm(PasswordResetForm):
    """Only members of the tenant the request is for get a reset email from it."""

    tenant_id: int = 0

    def get_users(self, email: str):  # type: ignore[no-untyped-def]
        users = super().get_users(email)
        return (u for u in users if Membership.objects.filter(user=u, tenant_id=self.tenant_id).exists())


class PasswordResetView(auth_views.PasswordResetView):
    form_class = TenantPasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def get_form(self, form_class=None):  # type: ignore[no-untyped-def]
        form = super().get_form(form_class)
        form.tenant_id = self.request.tenant.pk  # type: ignore[attr-defined]
        return form

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        # Over the limit, the answer is the same page as always (it tells nothing), but no mail leaves.
        if not password_reset_throttle_allows(email=form.cleaned_data["email"], ip=client_ip(self.request) or "-"):
            logger.warning("password reset throttled on %s", self.request.tenant.schema_name)  # type: ignore[attr-defined]
            return redirect(self.get_success_url())
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        email_verified_mark(user=form.user)  # the reset link reached this inbox
        return response


@action_required(Action.WORKSPACE_VIEW)
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/home.html", {"member_count": members_of(tenant=request.tenant).count()})  # type: ignore[attr-defined]


@action_required(Action.TEAM_VIEW, post=Action.MEMBER_INVITE)
def team(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    membership = request.membership  # type: ignore[attr-defined]
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation_create(
                tenant=tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": form.cleaned_data["email"]})
            return redirect("team")
    members = members_of(tenant=tenant)
    context = {
        "form": form,
        "members": members,
        "invitations": invitations_pending(tenant=tenant),
        "can_manage": role_allows(membership, Action.MEMBER_ROLE_CHANGE),
        "can_manage_owners": role_allows(membership, Action.OWNER_MANAGE),
        "role_form": RoleForm(),
        "transfer_form": (
            OwnershipTransferForm(members=members.exclude(pk=membership.pk))
            if role_allows(membership, Action.OWNERSHIP_TRANSFER)
            else None
        ),
    }
    return render(request, "accounts/team.html", context, status=400 if form.errors else 200)


@require_POST
@action_required(Action.MEMBER_INVITE)
def team_invitation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    invitation_revoke(invitation=invitation)
    messages.success(request, _("Invitation revoked."))
    return redirect("team")


@require_POST
@action_required(Action.MEMBER_ROLE_CHANGE)
def team_member_role(request: HttpRequest, pk: int) -> HttpResponse:
    membership = get_object_or_404(Membership, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            membership_set_role(
                actor=request.membership,  # type: ignore[attr-defined]
                membership=membership,
                role=form.cleaned_data["role"],
            )
            messages.success(request, _("Role updated."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("team")


@require_POST
@action_required(Action.MEMBER_REMOVE)
def team_member_remove(request: HttpRequest, pk: int) -> HttpResponse:
    membership = get_object_or_404(Membership, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    try:
        membership_remove(actor=request.membership, membership=membership)  # type: ignore[attr-defined]
        messages.success(request, _("%(email)s was removed.") % {"email": membership.user.email})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("team")


@require_POST
@action_required(Action.OWNERSHIP_TRANSFER)
def team_ownership_transfer(request: HttpRequest) -> HttpResponse:
    """The owner hands the workspace to another member and stays on as an admin."""
    members = members_of(tenant=request.tenant).exclude(pk=request.membership.pk)  # type: ignore[attr-defined]
    form = OwnershipTransferForm(request.POST, members=members)
    if not form.is_valid():
        messages.error(request, _("Choose the member who will own the workspace."))
        return redirect("team")
    try:
        new_owner = ownership_transfer(actor=request.membership, to=form.cleaned_data["member"])  # type: ignore[attr-defined]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("%(email)s now owns the workspace.") % {"email": new_owner.user.email})
    return redirect("team")


@action_required(Action.TOKEN_MANAGE)
def api_tokens(request: HttpRequest) -> HttpResponse:
    tenant, user = request.tenant, request.user  # type: ignore[attr-defined]
    form = ApiTokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _token, new_key = api_token_create(user=user, tenant=tenant, name=form.cleaned_data["name"])  # type: ignore[arg-type]
        form = ApiTokenForm()
    context = {"form": form, "tokens": api_tokens_of(user=user, tenant=tenant), "new_key": new_key}  # type: ignore[arg-type]
    return render(request, "accounts/api_tokens.html", context)


@require_POST
@action_required(Action.TOKEN_MANAGE)
def api_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(api_tokens_of(user=request.user, tenant=request.tenant), pk=pk)  # type: ignore[arg-type, attr-defined]
    api_token_revoke(token=token)
    messages.success(request, _("Token revoked."))
    return redirect("api_tokens")


@action_required(Action.SETTINGS_MANAGE)
def tenant_settings(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    initial = {"name": tenant.name, "language": tenant.language, "timezone": tenant.timezone}
    form = TenantSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        tenant_update_settings(
            tenant=tenant,
            name=form.cleaned_data["name"],
            language=form.cleaned_data["language"],
            timezone_name=form.cleaned_data["timezone"],
        )
        messages.success(request, _("Settings saved."))
        return redirect("tenant_settings")
    return render(request, "accounts/settings.html", {"form": form})


AUDIT_PAGE_SIZE = 50


@action_required(Action.AUDIT_VIEW)
def audit_log(request: HttpRequest) -> HttpResponse:
    """Who did what in this workspace: sign-ins, tokens, exports, erasures, roles, channel credentials."""
    action = request.GET.get("action", "")
    entries = audit_entries_of(tenant=request.tenant, action=action)  # type: ignore[attr-defined]
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "action": action, "actions": AuditAction.choices, "query": urlencode({"action": action})}
    return render(request, "accounts/audit.html", context)


@action_required(Action.MEDIA_VIEW)
def media_serve(request: HttpRequest, schema: str, path: str) -> FileResponse:
    """A tenant's uploaded and received files, to its members only, and a file of a record the member may
    not see (a message of a conversation kept from them, an import) to nobody else: the owning app's guard."""
    if schema != request.tenant.schema_name or ".." in path.split("/") or "\x00" in path:  # type: ignore[attr-defined]
        raise Http404
    if collect(MEDIA_GUARD, path=path, user=request.user, role=request.membership.role):  # type: ignore[attr-defined]
        raise Http404
    if not default_storage.exists(path):
        raise Http404
    # Customers choose what these files contain and are called: only an allow-list of image, audio and
    # video types shows inline; the rest (HTML, SVG...) is a download, and nothing is sniffed or run.
    content_type, inline = served_type(path)
    response = FileResponse(
        default_storage.open(path, "rb"),
        as_attachment=not inline or request.GET.get("download") == "1",
        filename=filename_clean(path.rsplit("/", 1)[-1]) or "file",
        content_type=content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = MEDIA_CSP
    return response
