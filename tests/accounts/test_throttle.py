"""Login and password-reset throttling is global: per email (hashed) and per address, across every
workspace, the main domain and the superadmin login. The counters do not live in the tenant-prefixed cache."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.models import AuditAction, AuditEntry, User
from core.redis import redis_client
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import PASSWORD, make_member

pytestmark = pytest.mark.django_db

THROTTLED = "Too many failed attempts"


def _login(client: Client, email: str, password: str, **extra: Any) -> Any:
    return client.post("/login/", {"email": email, "password": password}, **extra)


def test_failures_spread_over_tenants_and_the_main_domain_add_up(tenant_a: Tenant, tenant_b: Tenant) -> None:
    victim = make_member(tenant_a, "victim@alpha.test")
    alpha, beta = tenant_client(tenant_a, lang="en"), tenant_client(tenant_b, lang="en")
    main = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en")
    for client in (alpha, alpha, beta, beta):
        assert "incorrect" in _login(client, victim.email, "guess").content.decode()
    assert _login(main, victim.email.upper(), "guess").status_code == 400  # 5th, normalised email
    blocked = _login(alpha, victim.email, PASSWORD)
    assert blocked.status_code == 400 and THROTTLED in blocked.content.decode()
    assert THROTTLED in _login(beta, victim.email, PASSWORD).content.decode()
    # the keys are global and name a hash of the email, never the email itself
    keys = [k.decode() for k in redis_client().keys("throttle:login:*")]
    assert keys and all("victim" not in k and ":t_" not in k for k in keys)


def test_the_address_is_throttled_separately_from_the_email(tenant_a: Tenant, tenant_b: Tenant) -> None:
    member = make_member(tenant_a, "spray-target@alpha.test")
    sprayer = tenant_client(tenant_b, lang="en")
    for n in range(20):  # one guess for each of many emails, from one address
        _login(sprayer, f"someone-{n}@example.test", "Password1", REMOTE_ADDR="203.0.113.9")
    from_there = _login(tenant_client(tenant_a, lang="en"), member.email, PASSWORD, REMOTE_ADDR="203.0.113.9")
    assert THROTTLED in from_there.content.decode()
    elsewhere = _login(tenant_client(tenant_a), member.email, PASSWORD, REMOTE_ADDR="198.51.100.7")
    assert elsewhere.status_code == 302


def test_a_success_clears_the_email_counter(tenant_a: Tenant) -> None:
    member = make_member(tenant_a, "forgetful@alpha.test")
    client = tenant_client(tenant_a, lang="en")
    for _ in range(4):
        _login(client, member.email, "guess")
    assert _login(client, member.email, PASSWORD).status_code == 302
    again = tenant_client(tenant_a, lang="en")
    for _ in range(4):
        _login(again, member.email, "guess")
    assert _login(again, member.email, PASSWORD).status_code == 302


def test_the_superadmin_login_shares_the_throttle(tenant_a: Tenant) -> None:
    admin_user = User.objects.create_superuser(email="root@platform.test", password=PASSWORD)
    main = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en")
    for _ in range(3):
        assert main.post("/admin/login/", {"username": admin_user.email, "password": "guess"}).status_code == 200
    for _ in range(2):  # guesses on a tenant count too
        _login(tenant_client(tenant_a), admin_user.email, "guess")
    refused = main.post("/admin/login/?next=/admin/", {"username": admin_user.email, "password": PASSWORD})
    assert refused.status_code == 200 and THROTTLED in refused.content.decode()
    assert "_auth_user_id" not in main.session
    failed = AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED, target_label=admin_user.email)
    assert failed.filter(tenant=None).count() == 4 and failed.filter(tenant=tenant_a).count() == 2


def test_the_superadmin_login_works_and_is_audited() -> None:
    admin_user = User.objects.create_superuser(email="root2@platform.test", password=PASSWORD)
    main = Client(HTTP_HOST="localhost")
    ok = main.post("/admin/login/?next=/admin/", {"username": admin_user.email, "password": PASSWORD})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN, actor=admin_user, tenant=None).exists()


def test_password_reset_requests_are_throttled_per_email_across_tenants(
    tenant_a: Tenant, tenant_b: Tenant, settings: Any
) -> None:
    member = make_member(tenant_a, "resetter@alpha.test")
    for n in range(settings.PASSWORD_RESET_THROTTLE_ATTEMPTS):
        client = tenant_client(tenant_b if n % 2 else tenant_a)  # spread over tenants: still one counter
        assert client.post("/password-reset/", {"email": member.email})["Location"] == "/password-reset/sent/"
    sent = len(mail.outbox)
    assert sent == 3  # only alpha (where they are a member) mailed them
    # over the limit: the same answer, and no more mail
    response = tenant_client(tenant_a).post("/password-reset/", {"email": member.email})
    assert response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == sent
