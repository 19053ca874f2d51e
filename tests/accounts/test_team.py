from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.models import Invitation, Membership, Role, User
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import PASSWORD, make_member

pytestmark = pytest.mark.django_db


def _invite_link() -> str:
    match = re.search(r"http://alpha\.localhost(?::\d+)?(/invite/[^/\s]+/)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_invitation_by_email_creates_an_account_and_membership(tenant_a: Tenant, owner_a: User) -> None:
    owner = tenant_client(tenant_a, owner_a)
    response = owner.post("/team/", {"email": "New.Agent@alpha.test", "role": Role.AGENT})
    assert response.status_code == 302
    invitation = Invitation.objects.get(tenant=tenant_a, email="new.agent@alpha.test")
    assert len(invitation.token_hash) == 64  # only the hash is stored
    path = _invite_link()
    assert invitation.token_hash not in path

    newcomer = tenant_client(tenant_a)
    assert newcomer.get(path).status_code == 200
    joined = newcomer.post(path, {"name": "Nova", "password": PASSWORD})
    assert joined["Location"] == "/"
    user = User.objects.get(email="new.agent@alpha.test")
    assert Membership.objects.get(user=user, tenant=tenant_a).role == Role.AGENT
    assert newcomer.get("/").status_code == 200
    # the link works once
    assert tenant_client(tenant_a).get(path).status_code == 404


def test_existing_user_accepts_by_signing_in(tenant_a: Tenant, tenant_b: Tenant, owner_a: User) -> None:
    existing = make_member(tenant_b, "known@beta.test")
    tenant_client(tenant_a, owner_a).post("/team/", {"email": existing.email, "role": Role.ADMIN})
    path = _invite_link()
    client = tenant_client(tenant_a)
    assert b"password" in client.get(path).content
    accepted = client.post(path, {"email": existing.email, "password": PASSWORD})
    assert accepted["Location"] == "/"
    assert Membership.objects.get(user=existing, tenant=tenant_a).role == Role.ADMIN


def test_revoked_and_expired_invitations_do_not_work(tenant_a: Tenant, owner_a: User) -> None:
    owner = tenant_client(tenant_a, owner_a)
    owner.post("/team/", {"email": "late@alpha.test", "role": Role.AGENT})
    path = _invite_link()
    invitation = Invitation.objects.get(email="late@alpha.test")
    owner.post(f"/team/invitations/{invitation.pk}/revoke/")
    assert tenant_client(tenant_a).get(path).status_code == 404

    owner.post("/team/", {"email": "later@alpha.test", "role": Role.AGENT})
    path = _invite_link()
    from django.utils import timezone

    Invitation.objects.filter(email="later@alpha.test").update(expires_at=timezone.now())
    assert tenant_client(tenant_a).get(path).status_code == 404


def test_agents_cannot_manage_the_team(tenant_a: Tenant, owner_a: User, agent_a: User) -> None:
    agent = tenant_client(tenant_a, agent_a)
    page = agent.get("/team/")
    assert page.status_code == 200
    assert b"Send invitation" not in page.content and b"Enviar convite" not in page.content
    assert agent.post("/team/", {"email": "x@alpha.test", "role": Role.OWNER}).status_code == 403
    membership = Membership.objects.get(user=owner_a, tenant=tenant_a)
    assert agent.post(f"/team/members/{membership.pk}/remove/").status_code == 403
    assert agent.get("/settings/").status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_owner_changes_roles_but_never_leaves_no_owner(tenant_a: Tenant, owner_a: User, agent_a: User) -> None:
    owner = tenant_client(tenant_a, owner_a)
    agent_membership = Membership.objects.get(user=agent_a, tenant=tenant_a)
    owner.post(f"/team/members/{agent_membership.pk}/role/", {"role": Role.ADMIN})
    agent_membership.refresh_from_db()
    assert agent_membership.role == Role.ADMIN

    # alpha may have other owners from other tests' committed data; make this check self-contained
    others = Membership.objects.filter(tenant=tenant_a, role=Role.OWNER).exclude(user=owner_a)
    others.update(role=Role.ADMIN)
    own = Membership.objects.get(user=owner_a, tenant=tenant_a)
    owner.post(f"/team/members/{own.pk}/role/", {"role": Role.AGENT})
    own.refresh_from_db()
    assert own.role == Role.OWNER
    owner.post(f"/team/members/{agent_membership.pk}/remove/")
    assert not Membership.objects.filter(pk=agent_membership.pk).exists()


def test_settings_page_updates_name_language_timezone(tenant_a: Tenant, owner_a: User) -> None:
    owner = tenant_client(tenant_a, owner_a)
    assert owner.get("/settings/").status_code == 200
    response = owner.post("/settings/", {"name": "Alpha Renamed", "language": "en", "timezone": "America/Manaus"})
    assert response.status_code == 302
    saved = Tenant.objects.get(pk=tenant_a.pk)  # not refresh_from_db: tenant_a is shared by the session
    assert (saved.name, saved.language, saved.timezone) == ("Alpha Renamed", "en", "America/Manaus")


def test_api_tokens_page_shows_the_key_once_and_revokes(tenant_a: Tenant, agent_a: User) -> None:
    client = tenant_client(tenant_a, agent_a)
    created = client.post("/settings/api-tokens/", {"name": "zapier"})
    key = re.search(r'data-testid="new-token">([^<]+)<', created.content.decode())
    assert key is not None
    listing = client.get("/settings/api-tokens/").content.decode()
    assert "zapier" in listing and key.group(1) not in listing
    token = agent_a.api_tokens.get()
    client.post(f"/settings/api-tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None
