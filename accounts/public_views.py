"""Pages on the main domain: landing, signup, the workspace chooser and the start of every hand-off."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.forms import LoginForm, SignupForm
from accounts.models import User
from accounts.selectors import membership_get, memberships_of
from accounts.services import email_verification_confirm, handoff_token_make, workspace_signup
from accounts.views import social_providers
from tenants.models import Tenant
from tenants.services import tenant_url


def handoff_redirect(user: User, tenant: Tenant) -> HttpResponse:
    token = handoff_token_make(user=user, tenant=tenant)
    return redirect(tenant_url(tenant, "/auth/handoff/?" + urlencode({"token": token})))


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "public/landing.html", {"providers": social_providers()})


def signup(request: HttpRequest) -> HttpResponse:
    user = request.user if request.user.is_authenticated else None
    form = SignupForm(request.POST or None, user=user)  # type: ignore[arg-type]
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            tenant, owner = workspace_signup(
                company_name=data["company_name"],
                slug=data["slug"],
                email=data.get("email") or user.email,  # type: ignore[union-attr]
                password=data.get("password"),
                name=data.get("name", ""),
                language=(get_language() or "pt-br").lower(),
                existing_user=user,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return handoff_redirect(owner, tenant)
    return render(
        request,
        "public/signup.html",
        {"form": form, "providers": social_providers()},
        status=400 if form.errors else 200,
    )


def public_login(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        assert form.user is not None
        login(request, form.user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("workspaces")
    return render(
        request,
        "public/login.html",
        {"form": form, "providers": social_providers()},
        status=400 if form.errors else 200,
    )


@login_required(login_url="public_login")
def workspaces(request: HttpRequest) -> HttpResponse:
    memberships = list(memberships_of(user=request.user))  # type: ignore[arg-type]
    if len(memberships) == 1:
        return handoff_redirect(request.user, memberships[0].tenant)  # type: ignore[arg-type]
    return render(request, "public/workspaces.html", {"memberships": memberships})


@login_required(login_url="public_login")
def handoff_start(request: HttpRequest) -> HttpResponse:
    tenant = Tenant.objects.filter(slug=request.GET.get("tenant", ""), is_active=True).first()
    if tenant is None or membership_get(user=request.user, tenant=tenant) is None:  # type: ignore[arg-type]
        messages.error(request, _("Your account is not a member of that workspace."))
        return redirect("workspaces")
    return handoff_redirect(request.user, tenant)  # type: ignore[arg-type]


def social_start(request: HttpRequest, provider: str) -> HttpResponse:
    """Confirm, then POST to allauth (which needs a POST to start a login), returning to the tenant."""
    if provider not in settings.SOCIALACCOUNT_PROVIDERS:
        raise Http404
    slug = request.GET.get("tenant", "")
    after = "/auth/handoff/start/?" + urlencode({"tenant": slug}) if slug else "/workspaces/"
    tenant = Tenant.objects.filter(slug=slug).first()
    return render(request, "public/social_start.html", {"provider": provider, "next": after, "tenant": tenant})


def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link of the verification email sent at signup."""
    if email_verification_confirm(token=token) is None:
        messages.error(request, _("That confirmation link is invalid or has expired."))
    else:
        messages.success(request, _("Your email address is confirmed."))
    return redirect("workspaces" if request.user.is_authenticated else "public_login")


@require_POST
def public_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("landing")
