"""The audit log: sensitive actions are recorded with who, what, where from; owners and admins of the
workspace see theirs (page and API), agents and other workspaces do not."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client

from accounts.models import AuditAction, AuditEntry, Membership, Role, User
from accounts.services import api_token_create
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import PASSWORD

pytestmark = pytest.mark.django_db


def _actions(tenant: Tenant) -> list[str]:
    return list(AuditEntry.objects.filter(tenant=tenant).values_list("action", flat=True))


def test_sign_ins_tokens_and_roles_are_recorded(tenant_a: Tenant, owner_a: User, agent_a: User) -> None:
    client = tenant_client(tenant_a)
    client.post("/login/", {"email": agent_a.email, "password": "wrong"}, REMOTE_ADDR="203.0.113.5")
    client.post("/login/", {"email": agent_a.email, "password": PASSWORD}, REMOTE_ADDR="203.0.113.5")
    failed = AuditEntry.objects.get(tenant=tenant_a, action=AuditAction.LOGIN_FAILED)
    assert (failed.target_label, str(failed.ip), failed.metadata) == (
        agent_a.email,
        "203.0.113.5",
        {"reason": "bad_credentials"},
    )
    assert "wrong" not in str(failed.metadata)  # never the password
    login = AuditEntry.objects.get(tenant=tenant_a, action=AuditAction.LOGIN)
    assert login.actor == agent_a and login.request_id and str(login.ip) == "203.0.113.5"

    agent = tenant_client(tenant_a, agent_a)
    agent.post("/settings/api-tokens/", {"name": "zap"})
    token = agent_a.api_tokens.get(name="zap")
    agent.post(f"/settings/api-tokens/{token.pk}/revoke/")
    created = AuditEntry.objects.get(tenant=tenant_a, action=AuditAction.TOKEN_CREATED)
    assert created.actor == agent_a and created.target_id == str(token.pk) and "cp_" not in str(created.metadata)
    assert AuditEntry.objects.filter(tenant=tenant_a, action=AuditAction.TOKEN_REVOKED, actor=agent_a).exists()

    owner = tenant_client(tenant_a, owner_a)
    membership = Membership.objects.get(user=agent_a, tenant=tenant_a)
    owner.post(f"/team/members/{membership.pk}/role/", {"role": Role.ADMIN})
    role = AuditEntry.objects.get(tenant=tenant_a, action=AuditAction.ROLE_CHANGED)
    assert (role.actor, role.target_label, role.metadata) == (owner_a, agent_a.email, {"from": "agent", "to": "admin"})


def test_exports_and_channel_credentials_are_recorded(
    tenant_a: Tenant, owner_a: User, agent_a: User, channels: dict[str, int]
) -> None:
    # Exports are a manager's (core.roles): an agent's refused attempt leaves no export behind.
    assert tenant_client(tenant_a, agent_a).get("/contacts/export/").status_code == 403
    owner = tenant_client(tenant_a, owner_a)
    assert owner.get("/contacts/export/").status_code == 200
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="api")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    assert api.get("/api/v1/contacts/export/").status_code == 200
    assert AuditEntry.objects.filter(tenant=tenant_a, action=AuditAction.EXPORT, actor=owner_a).count() == 2
    assert not AuditEntry.objects.filter(tenant=tenant_a, action=AuditAction.EXPORT, actor=agent_a).exists()
    owner.post("/voice/settings/", {"api_key": "key_secret_value_123"})
    entry = AuditEntry.objects.filter(tenant=tenant_a, action=AuditAction.CHANNEL_CREDENTIALS, actor=owner_a).get()
    assert entry.target_label == "Retell API key" and "key_secret_value_123" not in entry.target_label + str(
        entry.metadata
    )
    owner.post("/channels/qr/new/", {"name": "Loja"})
    channel_entry = AuditEntry.objects.filter(tenant=tenant_a, action=AuditAction.CHANNEL_CREDENTIALS, actor=owner_a)
    assert channel_entry.first().metadata == {"kind": "whatsapp_web", "change": "created"}  # type: ignore[union-attr]


def test_superadmin_actions_are_recorded_in_the_tenant_they_touch(tenant_a: Tenant) -> None:
    root = User.objects.create_superuser(email="audit-root@platform.test", password=PASSWORD)
    admin = Client(HTTP_HOST="localhost")
    admin.force_login(root, backend="django.contrib.auth.backends.ModelBackend")
    response = admin.post(
        "/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [tenant_a.pk]}, follow=False
    )
    assert response.status_code == 302
    admin.post("/admin/tenants/tenant/", {"action": "reactivate", "_selected_action": [tenant_a.pk]})
    entries = AuditEntry.objects.filter(tenant=tenant_a, action=AuditAction.SUPERADMIN, actor=root)
    assert sorted(e.metadata["message"] for e in entries) == ["reactivated", "suspended"]
    assert LogEntry.objects.filter(user=root).count() == 2
    tenant_a.refresh_from_db()
    assert tenant_a.is_active


def test_owners_and_admins_see_their_workspace_log_agents_do_not(
    tenant_a: Tenant, tenant_b: Tenant, owner_a: User, agent_a: User
) -> None:
    connection.set_schema_to_public()
    AuditEntry.objects.create(tenant=tenant_a, action=AuditAction.EXPORT, actor_label="a@alpha.test", target_label="A1")
    AuditEntry.objects.create(tenant=tenant_b, action=AuditAction.EXPORT, actor_label="b@beta.test", target_label="B1")
    AuditEntry.objects.create(tenant=tenant_a, action=AuditAction.ERASE, actor_label="a@alpha.test", target_label="#7")
    owner = tenant_client(tenant_a, owner_a, lang="en")
    page = owner.get("/settings/audit/").content.decode()
    assert "A1" in page and "#7" in page and "B1" not in page
    filtered = owner.get("/settings/audit/", {"action": "erase"}).content.decode()
    assert "#7" in filtered and "A1" not in filtered
    assert 'href="/settings/audit/"' in owner.get("/").content.decode()  # in the navigation
    assert tenant_client(tenant_a, agent_a).get("/settings/audit/").status_code == 403
    assert 'href="/settings/audit/"' not in tenant_client(tenant_a, agent_a).get("/").content.decode()

    _t, owner_key = api_token_create(user=owner_a, tenant=tenant_a, name="audit")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {owner_key}")
    body = api.get("/api/v1/audit/", {"action": "export"}).json()
    labels = [row["target_label"] for row in body["results"]]
    assert labels == ["A1"] and body["results"][0]["actor"] == "a@alpha.test"
    _t, agent_key = api_token_create(user=agent_a, tenant=tenant_a, name="audit")
    assert (
        Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {agent_key}").get("/api/v1/audit/").status_code
        == 403
    )


def test_the_page_is_paginated(tenant_a: Tenant, owner_a: User) -> None:
    AuditEntry.objects.bulk_create(
        AuditEntry(tenant=tenant_a, action=AuditAction.EXPORT, target_label=f"row-{n:03d}") for n in range(60)
    )
    owner = tenant_client(tenant_a, owner_a, lang="en")
    first = owner.get("/settings/audit/").content.decode()
    assert "Page 1 of 2" in first
    second = owner.get("/settings/audit/", {"page": 2}).content.decode()
    assert first.count("row-") + second.count("row-") >= 60
