"""An account's email counts as proven only after the person used a link sent to it: the signup's
verification email, an invitation, or a password reset. (OAuth auto-linking relies on it.)"""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Role, User
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import PASSWORD, make_member

pytestmark = pytest.mark.django_db


def _link(pattern: str) -> str:
    match = re.search(pattern, mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_signup_mails_a_verification_link_that_proves_the_address() -> None:
    client = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en")
    response = client.post(
        "/signup/",
        {
            "company_name": "Oficina",
            "slug": "oficina-verify",
            "name": "Rui",
            "email": "rui@oficina.test",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 302
    owner = User.objects.get(email="rui@oficina.test")
    assert owner.email_verified_at is None  # a typed address proves nothing
    path = _link(r"http://localhost(?::\d+)?(/verify-email/[^/\s]+/)")
    tampered = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en").get(path[:-3] + "xx/", follow=True)
    assert "invalid or has expired" in tampered.content.decode()
    owner.refresh_from_db()
    assert owner.email_verified_at is None
    confirmed = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en").get(path, follow=True)
    assert "Your email address is confirmed." in confirmed.content.decode()
    owner.refresh_from_db()
    assert owner.email_verified_at is not None


def test_a_link_made_for_an_address_the_account_no_longer_has_does_not_verify(tenant_a: Tenant) -> None:
    from accounts.services import email_verification_send

    user = make_member(tenant_a, "before@alpha.test")
    email_verification_send(user=user)
    path = _link(r"http://localhost(?::\d+)?(/verify-email/[^/\s]+/)")
    User.objects.filter(pk=user.pk).update(email="after@alpha.test")
    Client(HTTP_HOST="localhost").get(path)
    user.refresh_from_db()
    assert user.email_verified_at is None


def test_accepting_an_invitation_proves_the_address(tenant_a: Tenant, owner_a: User) -> None:
    tenant_client(tenant_a, owner_a).post("/team/", {"email": "invited@alpha.test", "role": Role.AGENT})
    path = _link(r"http://alpha\.localhost(?::\d+)?(/invite/[^/\s]+/)")
    tenant_client(tenant_a).post(path, {"name": "Inês", "password": PASSWORD})
    assert User.objects.get(email="invited@alpha.test").email_verified_at is not None


def test_completing_a_password_reset_proves_the_address(tenant_a: Tenant, agent_a: User) -> None:
    assert agent_a.email_verified_at is None
    client = tenant_client(tenant_a)
    client.post("/password-reset/", {"email": agent_a.email})
    path = _link(r"http://alpha\.localhost(?::\d+)?(/password-reset/[^\s]+/)")
    form_page = client.get(path, follow=True)
    new_password = "another-long-pass-78"
    client.post(form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    agent_a.refresh_from_db()
    assert agent_a.check_password(new_password) and agent_a.email_verified_at is not None
