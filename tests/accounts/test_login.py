from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.middleware import SESSION_TENANT_KEY
from accounts.models import Role, User
from accounts.services import handoff_token_make
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import PASSWORD, make_member

pytestmark = pytest.mark.django_db


def test_passwords_are_hashed_with_argon2(owner_a: User) -> None:
    assert owner_a.password.startswith("argon2")


def test_member_logs_in_and_sees_the_shell(tenant_a: Tenant, agent_a: User) -> None:
    client = tenant_client(tenant_a)
    response = client.post("/login/", {"email": agent_a.email.upper(), "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert agent_a.email in home.content.decode()
    assert client.session[SESSION_TENANT_KEY] == tenant_a.schema_name


def test_login_respects_a_safe_next_only(tenant_a: Tenant, agent_a: User) -> None:
    ok = tenant_client(tenant_a).post("/login/?next=/team/", {"email": agent_a.email, "password": PASSWORD})
    assert ok["Location"] == "/team/"
    evil = tenant_client(tenant_a).post(
        "/login/?next=https://evil.test/", {"email": agent_a.email, "password": PASSWORD}
    )
    assert evil["Location"] == "/"


def _scrubbed(response: Any) -> tuple[int, str]:
    return response.status_code, re.sub(r'value="[^"]*"', "", response.content.decode())


def test_non_member_gets_the_same_answer_as_a_wrong_password(tenant_a: Tenant, tenant_b: Tenant) -> None:
    outsider = make_member(tenant_b, "outsider@beta.test")
    right_password = tenant_client(tenant_a, lang="en").post("/login/", {"email": outsider.email, "password": PASSWORD})
    wrong_password = tenant_client(tenant_a, lang="en").post("/login/", {"email": outsider.email, "password": "nope"})
    nobody = tenant_client(tenant_a, lang="en").post("/login/", {"email": "nobody@nowhere.test", "password": PASSWORD})
    assert right_password.status_code == 400
    assert "Email or password is incorrect." in right_password.content.decode()
    assert "member" not in right_password.content.decode()
    # byte for byte the same page (but for the form's values), whether the account exists here or not
    assert _scrubbed(right_password) == _scrubbed(wrong_password)
    assert _scrubbed(nobody)[0] == 400 and "Email or password is incorrect." in nobody.content.decode()


def test_a_session_from_another_tenant_is_not_accepted(tenant_a: Tenant, tenant_b: Tenant) -> None:
    both = make_member(tenant_b, "both@beta.test")
    client = tenant_client(tenant_b, both)
    # same session cookie presented to tenant A, where the user is not a member: logged out
    response = client.get("/", HTTP_HOST="alpha.localhost")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    # even a member of both must log in on each tenant: the session names the tenant it was made on
    make_member_of_a = tenant_client(tenant_b, both)
    from accounts.models import Membership

    Membership.objects.create(user=both, tenant=tenant_a, role=Role.AGENT)
    assert make_member_of_a.get("/", HTTP_HOST="alpha.localhost").status_code == 302


def test_removed_member_is_logged_out_on_the_next_request(tenant_a: Tenant, agent_a: User) -> None:
    client = tenant_client(tenant_a, agent_a)
    assert client.get("/").status_code == 200
    agent_a.memberships.all().delete()
    assert client.get("/").status_code == 302


def test_login_is_throttled_after_repeated_failures(tenant_a: Tenant, agent_a: User) -> None:
    client = tenant_client(tenant_a, lang="en")
    for _ in range(5):
        bad = client.post("/login/", {"email": agent_a.email, "password": "wrong"})
        assert "incorrect" in bad.content.decode()
    # now even the right password is refused for a while
    blocked = client.post("/login/", {"email": agent_a.email, "password": PASSWORD})
    assert blocked.status_code == 400
    assert "Too many failed attempts" in blocked.content.decode()


def test_logout_requires_post_and_ends_the_session(tenant_a: Tenant, agent_a: User) -> None:
    client = tenant_client(tenant_a, agent_a)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_handoff_token_is_bound_to_its_tenant_and_single_use(tenant_a: Tenant, tenant_b: Tenant, agent_a: User) -> None:
    token = handoff_token_make(user=agent_a, tenant=tenant_a)
    wrong = Client(HTTP_HOST="beta.localhost").get("/auth/handoff/", {"token": token})
    assert wrong["Location"] == "/login/"
    right = Client(HTTP_HOST="alpha.localhost")
    assert right.get("/auth/handoff/", {"token": token})["Location"] == "/"
    assert right.get("/").status_code == 200
    replay = Client(HTTP_HOST="alpha.localhost").get("/auth/handoff/", {"token": token})
    assert replay["Location"] == "/login/"
    forged = Client(HTTP_HOST="alpha.localhost").get("/auth/handoff/", {"token": token[:-3] + "abc"})
    assert forged["Location"] == "/login/"


def test_handoff_token_expires(tenant_a: Tenant, agent_a: User, settings: Any) -> None:
    token = handoff_token_make(user=agent_a, tenant=tenant_a)
    settings.HANDOFF_MAX_AGE_S = -1
    assert Client(HTTP_HOST="alpha.localhost").get("/auth/handoff/", {"token": token})["Location"] == "/login/"


def test_main_domain_login_hands_off_to_the_only_workspace(tenant_a: Tenant, agent_a: User) -> None:
    client = Client(HTTP_HOST="localhost")
    response = client.post("/login/", {"email": agent_a.email, "password": PASSWORD}, follow=False)
    assert response["Location"] == "/workspaces/"
    chooser = client.get("/workspaces/")
    assert chooser.status_code == 302
    assert chooser["Location"].startswith("http://alpha.localhost:")
    assert "/auth/handoff/?token=" in chooser["Location"]


def test_main_domain_lists_several_workspaces(tenant_a: Tenant, tenant_b: Tenant) -> None:
    from accounts.models import Membership

    user = make_member(tenant_a, "multi@both.test")
    Membership.objects.create(user=user, tenant=tenant_b, role=Role.ADMIN)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    page = client.get("/workspaces/")
    assert page.status_code == 200
    assert "Alpha Ltda" in page.content.decode() and "Beta SA" in page.content.decode()
    start = client.get("/auth/handoff/start/", {"tenant": "beta"})
    assert start["Location"].startswith("http://beta.localhost:")
    refused = Client(HTTP_HOST="localhost")
    refused.force_login(make_member(tenant_a, "single@alpha.test"))
    assert refused.get("/auth/handoff/start/", {"tenant": "beta"})["Location"] == "/workspaces/"


def test_password_reset_only_mails_members_of_this_tenant(tenant_a: Tenant, tenant_b: Tenant, agent_a: User) -> None:
    outsider = make_member(tenant_b, "reset-outsider@beta.test")
    client = tenant_client(tenant_a)
    client.post("/password-reset/", {"email": outsider.email})
    assert mail.outbox == []
    response = client.post("/password-reset/", {"email": agent_a.email})
    assert response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    link = next(line for line in body.splitlines() if "/password-reset/" in line).strip()
    assert link.startswith("http://alpha.localhost/password-reset/")
    path = link.split("alpha.localhost", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    new_password = "another-long-pass-77"
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done["Location"] == "/password-reset/complete/"
    agent_a.refresh_from_db()
    assert agent_a.check_password(new_password)
