"""django-allauth adapters: social login only, on the main domain; password signup is ours.

A social login is connected to an existing account by email only when both sides vouch for the address:
the provider says it verified it, and the account's owner proved it here (invitation link, password
reset, verification link) or through an earlier social login. Otherwise someone who signed up with a
victim's address, or a provider account with an unconfirmed address, could take over the other side."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.services import email_address_sync, email_is_verified


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False  # accounts are made by workspace signup or invitation, not allauth's form


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        return True

    def authenticate_by_email(self, sociallogin: Any) -> tuple[Any, str] | None:
        # allauth offers only the addresses the provider marked verified; the account must have proved it too.
        found = super().authenticate_by_email(sociallogin)
        if found is None:
            return None
        if not email_is_verified(user=found[0], email=found[1]):
            return None
        email_address_sync(user=found[0])  # so that allauth keeps the password of this proven account
        return found

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        """A new social identity whose email already has an account here (not proven on one side):
        no second account and no link. Once the address is proven (a password reset does it) and the
        provider vouches for it, the same social login connects."""
        if sociallogin.is_existing:
            return
        vouched = {e.email.lower() for e in sociallogin.email_addresses if e.verified}
        emails = {e.email.lower() for e in sociallogin.email_addresses} | {(sociallogin.user.email or "").lower()}
        taken = [e for e in emails if e and User.objects.filter(email__iexact=e).exists()]
        if not taken:
            return
        if any(e in vouched for e in taken):
            text = _(
                "An account with this email already exists and its address is not confirmed yet. Reset your "
                "password from your workspace's sign-in page (that confirms it), then try again."
            )
        else:
            text = _("The provider has not confirmed this email address, so it cannot open an existing account.")
        messages.error(request, text)
        raise ImmediateHttpResponse(redirect("public_login"))
