from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.audit import audit_record, client_ip
from accounts.models import AuditAction, Membership, Role, User
from accounts.services import login_throttle_blocked, login_throttle_failed, login_throttle_reset
from tenants.models import Tenant
from tenants.services import slug_validate

THROTTLED = _("Too many failed attempts. Wait a few minutes and try again.")
INVALID_LOGIN = _("Email or password is incorrect.")


def login_failed(request: HttpRequest, email: str, tenant: Tenant | None, reason: str) -> None:
    login_throttle_failed(email=email, ip=client_ip(request) or "-")
    audit_record(
        action=AuditAction.LOGIN_FAILED,
        target_type="email",
        target_label=email.strip().lower(),
        actor_label=email.strip().lower(),
        tenant=tenant,
        request=request,
        metadata={"reason": reason},
    )


class LoginForm(forms.Form):
    """Email and password, throttled per email and per address across every workspace. On a tenant, a
    non-member gets exactly the answer a wrong password gets (the password was hashed either way)."""

    email = forms.EmailField(
        label=_("Email"), widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    password = forms.CharField(
        label=_("Password"), widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, request: HttpRequest, *args: Any, tenant: Tenant | None = None, **kwargs: Any) -> None:
        self.request = request
        self.tenant = tenant
        self.user: User | None = None
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        email, password = data.get("email", ""), data.get("password", "")
        if not email or not password:
            return data
        ip = client_ip(self.request) or "-"
        if login_throttle_blocked(email=email, ip=ip):
            login_failed(self.request, email, self.tenant, "throttled")
            raise ValidationError(THROTTLED, code="throttled")
        user = authenticate(self.request, username=email.lower(), password=password)
        reason = "bad_credentials" if user is None else ""
        if (
            user is not None
            and self.tenant is not None
            and not Membership.objects.filter(user=user, tenant=self.tenant).exists()
        ):
            user, reason = None, "not_a_member"
        if user is None:
            login_failed(self.request, email, self.tenant, reason)
            raise ValidationError(INVALID_LOGIN, code="invalid_login")
        login_throttle_reset(email=email, ip=ip)
        self.user = user  # type: ignore[assignment]
        return data


class AdminLoginForm(AdminAuthenticationForm):
    """The superadmin login, under the same throttle as every other login."""

    def clean(self) -> dict[str, Any]:
        email = str(self.cleaned_data.get("username") or "")
        ip = client_ip(self.request) or "-"  # type: ignore[arg-type]
        if email and login_throttle_blocked(email=email, ip=ip):
            login_failed(self.request, email, None, "throttled")  # type: ignore[arg-type]
            raise ValidationError(THROTTLED, code="throttled")
        try:
            data = super().clean()
        except ValidationError:
            if email and self.cleaned_data.get("password"):
                login_failed(self.request, email, None, "admin_refused")  # type: ignore[arg-type]
            raise
        if email:
            login_throttle_reset(email=email, ip=ip)
        return data


class SignupForm(forms.Form):
    company_name = forms.CharField(label=_("Business name"), max_length=120)
    slug = forms.CharField(label=_("Subdomain"), max_length=40, help_text=_("Lowercase letters, digits and hyphens."))
    name = forms.CharField(label=_("Your name"), max_length=150)
    email = forms.EmailField(label=_("Email"))
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args: Any, user: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing_user = user if user is not None and user.is_authenticated else None
        if self.existing_user is not None:
            # Signed in already (e.g. with Google): the account exists, only the workspace is new.
            for field in ("name", "email", "password"):
                del self.fields[field]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"].strip().lower()
        slug_validate(slug)
        return slug

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        password_validation.validate_password(password, User(email=self.data.get("email", "")))
        return str(password)


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.AGENT)


class AcceptInviteForm(forms.Form):
    name = forms.CharField(label=_("Your name"), max_length=150)
    password = forms.CharField(
        label=_("Choose a password"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        password_validation.validate_password(password)
        return str(password)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class OwnershipTransferForm(forms.Form):
    member = forms.ModelChoiceField(label=_("New owner"), queryset=Membership.objects.none())

    def __init__(self, *args: Any, members: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["member"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = members
        field.label_from_instance = lambda m: m.user.get_full_name()  # type: ignore[method-assign, assignment]


class ApiTokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)


class TenantSettingsForm(forms.Form):
    name = forms.CharField(label=_("Business name"), max_length=120)
    language = forms.ChoiceField(
        label=_("Default language"), choices=[("pt-br", "Português (Brasil)"), ("en", "English")]
    )
    timezone = forms.ChoiceField(label=_("Timezone"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import zoneinfo

        zones = sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith("Etc/"))
        self.fields["timezone"].choices = [(z, z.replace("_", " ")) for z in zones]  # type: ignore[attr-defined]
