from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts.models import Membership, Role, User
from tenants.models import Domain, Tenant
from tenants.services import schema_name_for, tenant_reactivate, tenant_suspend
from tests.conftest import tenant_client
from tests.support import PASSWORD


def _schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])
        return cursor.fetchone() is not None


@pytest.mark.django_db
def test_signup_creates_schema_domain_owner_and_lands_logged_in() -> None:
    client = Client(HTTP_HOST="localhost")
    response = client.post(
        "/signup/",
        {
            "company_name": "Padaria Pão Quente",
            "slug": "padaria",
            "name": "Ana",
            "email": "Ana@Padaria.test",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.hostname == "padaria.localhost"
    assert target.path == "/auth/handoff/"

    tenant = Tenant.objects.get(slug="padaria")
    assert tenant.schema_name == schema_name_for("padaria")
    assert _schema_exists(tenant.schema_name)
    assert Domain.objects.filter(tenant=tenant, domain="padaria.localhost", is_primary=True).exists()
    owner = User.objects.get(email="ana@padaria.test")
    assert Membership.objects.get(user=owner, tenant=tenant).role == Role.OWNER
    assert tenant.timezone == "America/Sao_Paulo"

    tenant_side = Client(HTTP_HOST="padaria.localhost")
    landed = tenant_side.get(f"{target.path}?{target.query}")
    assert landed.status_code == 302 and landed["Location"] == "/"
    home = tenant_side.get("/")
    assert home.status_code == 200
    assert b"Padaria" in home.content
    # the hand-off token is single use
    again = Client(HTTP_HOST="padaria.localhost").get(f"{target.path}?{target.query}")
    assert again["Location"] == "/login/"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("slug", "message"),
    [("ab", "3 to 40"), ("Bad_Slug", "3 to 40"), ("admin", "reserved"), ("alpha", "already taken")],
)
def test_signup_rejects_bad_subdomains(tenant_a: Tenant, slug: str, message: str) -> None:
    response = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en").post(
        "/signup/", {"company_name": "X", "slug": slug, "name": "X", "email": "x@x.test", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.django_db
def test_create_tenant_command_makes_tenant_and_owner(capsys: Any) -> None:
    call_command("create_tenant", "acme", name="Acme", owner_email="boss@acme.test", owner_password=PASSWORD)
    tenant = Tenant.objects.get(slug="acme")
    assert _schema_exists(tenant.schema_name)
    assert Membership.objects.filter(tenant=tenant, user__email="boss@acme.test", role=Role.OWNER).exists()
    assert "http://acme.localhost" in capsys.readouterr().out


@pytest.mark.django_db
def test_unknown_subdomain_gets_a_clear_404(tenants: Any) -> None:
    response = Client(HTTP_HOST="nobody.localhost", HTTP_ACCEPT_LANGUAGE="en").get("/")
    assert response.status_code == 404
    assert b"Workspace not found" in response.content


@pytest.mark.django_db
def test_suspended_tenant_gets_a_clear_page_not_a_crash(tenant_a: Tenant, owner_a: User) -> None:
    tenant_suspend(tenant=tenant_a, reason="unpaid")
    try:
        client = tenant_client(tenant_a, owner_a, lang="en")
        response = client.get("/")
        assert response.status_code == 403
        assert b"This workspace is suspended" in response.content
        assert client.get("/api/v1/me/").status_code == 403
        assert client.get("/health").status_code == 200  # the load balancer still sees it
    finally:
        tenant_reactivate(tenant=tenant_a)
    assert tenant_client(tenant_a, owner_a).get("/").status_code == 200


@pytest.mark.django_db
def test_superadmin_suspends_and_reactivates_from_the_admin(tenant_b: Tenant) -> None:
    admin = User.objects.create_superuser(email="root@platform.test", password=PASSWORD)
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    for path in (
        "/admin/tenants/tenant/",
        "/admin/tenants/domain/",
        "/admin/accounts/user/",
        "/admin/accounts/membership/",
        "/admin/tenants/plan/",
    ):
        assert client.get(path).status_code == 200, path
    response = client.post("/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [tenant_b.pk]})
    assert response.status_code == 302
    tenant_b.refresh_from_db()
    assert tenant_b.is_active is False and tenant_b.suspended_at is not None
    client.post("/admin/tenants/tenant/", {"action": "reactivate", "_selected_action": [tenant_b.pk]})
    tenant_b.refresh_from_db()
    assert tenant_b.is_active is True


@pytest.mark.django_db
def test_superadmin_is_only_on_the_main_domain(tenant_a: Tenant) -> None:
    assert Client(HTTP_HOST="alpha.localhost").get("/admin/").status_code == 404


@pytest.mark.django_db
def test_tenant_language_and_timezone_apply(tenant_a: Tenant, tenant_b: Tenant, owner_a: User) -> None:
    # alpha speaks pt-BR (the default), beta English
    pt = tenant_client(tenant_a).get("/login/")
    assert "Entrar" in pt.content.decode()
    assert pt["Content-Language"] == "pt-br"
    en = Client(HTTP_HOST="beta.localhost").get("/login/")
    assert en["Content-Language"] == "en"
    # a user's own choice wins over the tenant default
    client = tenant_client(tenant_a)
    client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    assert client.get("/login/")["Content-Language"] == "en"
