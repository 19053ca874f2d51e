"""The full OAuth round trip over HTTP: tenant login page -> main domain -> emulated provider ->
callback on the main domain (the one redirect URI) -> signed hand-off -> logged in on the tenant."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount

from accounts.models import User
from accounts.services import email_verified_mark
from emulators.oauth import OAuthEmulator
from tenants.models import Tenant
from tests.support import PASSWORD, csrf_from, http_client, make_member


def _social_login(client: httpx.Client, app_server: str, tenant: Tenant, provider: str) -> httpx.Response:
    port = app_server.rsplit(":", 1)[1]
    tenant_base = f"http://{tenant.slug}.localhost:{port}"
    login_page = client.get(f"{tenant_base}/login/")
    assert f'href="/auth/social/{provider}/"' in login_page.text

    confirm = client.get(f"{tenant_base}/auth/social/{provider}/", follow_redirects=True)
    assert str(confirm.url).startswith(f"{app_server}/auth/social/{provider}/?tenant={tenant.slug}")
    start = client.post(
        f"{app_server}/accounts/{provider}/login/?process=login",
        data={"csrfmiddlewaretoken": csrf_from(confirm.text), "next": f"/auth/handoff/start/?tenant={tenant.slug}"},
        headers={"Referer": str(confirm.url)},
    )
    assert start.status_code == 302
    authorize = urlsplit(start.headers["Location"])
    assert authorize.hostname == "127.0.0.1"  # the emulator, not the real provider
    redirect_uri = parse_qs(authorize.query)["redirect_uri"][0]
    assert redirect_uri == f"{app_server}/accounts/{provider}/login/callback/"
    return client.get(start.headers["Location"], follow_redirects=True)


@pytest.mark.parametrize("provider", ["google", "facebook"])
def test_oauth_round_trip_lands_the_member_on_their_tenant(
    provider: str, app_server: str, tenants: tuple[Tenant, Tenant], oauth_emulator: OAuthEmulator, committed: Any
) -> None:
    alpha, _beta = tenants
    email = f"oauth-{provider}-{uuid.uuid4().hex[:6]}@alpha.test"
    email_verified_mark(user=make_member(alpha, email))  # e.g. they joined through the emailed invitation
    oauth_emulator.set_identity(email, "Olivia Auth")
    redeemed_before = oauth_emulator.redeemed

    with http_client() as client:
        final = _social_login(client, app_server, alpha, provider)
        assert final.status_code == 200
        port = app_server.rsplit(":", 1)[1]
        assert str(final.url) == f"http://alpha.localhost:{port}/"
        assert email in final.text
    assert oauth_emulator.redeemed == redeemed_before + 1  # the code was exchanged server to server
    assert SocialAccount.objects.filter(user__email=email, provider=provider).exists()
    assert User.objects.get(email=email).check_password(PASSWORD)  # linked, and the password still works


def test_oauth_user_who_is_not_a_member_is_not_let_in(
    app_server: str, tenants: tuple[Tenant, Tenant], oauth_emulator: OAuthEmulator, committed: Any
) -> None:
    _alpha, beta = tenants
    oauth_emulator.set_identity(f"stranger-{uuid.uuid4().hex[:6]}@nowhere.test", "Stranger")
    with http_client() as client:
        final = _social_login(client, app_server, beta, "google")
        assert urlsplit(str(final.url)).hostname == "localhost"
        assert urlsplit(str(final.url)).path == "/workspaces/"
        assert "not part of any workspace" in final.text or "nenhum espaço de trabalho" in final.text


def _refused_link(client: Any, app_server: str, tenant: Tenant) -> Any:
    final = _social_login(client, app_server, tenant, "google")
    assert str(final.url) == f"{app_server}/login/"  # back on the main domain's sign-in page, not signed in
    assert "Sign out" not in final.text and "Sair" not in final.text
    return final


def test_oauth_does_not_claim_a_password_account_whose_email_was_never_proven(
    app_server: str, tenants: tuple[Tenant, Tenant], oauth_emulator: OAuthEmulator, committed: Any
) -> None:
    """Someone signed up with this address (never confirmed); the provider vouches for it: no link."""
    alpha, _beta = tenants
    email = f"squatted-{uuid.uuid4().hex[:6]}@alpha.test"
    squatter = make_member(alpha, email)
    oauth_emulator.set_identity(email, "Real Owner", email_verified=True)
    with http_client(headers={"Accept-Language": "en"}) as client:
        final = _refused_link(client, app_server, alpha)
        assert "address is not confirmed yet" in final.text
    assert not SocialAccount.objects.filter(user=squatter).exists()
    squatter.refresh_from_db()
    assert squatter.check_password(PASSWORD)  # nothing was wiped or taken over
    assert User.objects.filter(email=email).count() == 1


def test_oauth_with_an_unconfirmed_provider_email_does_not_open_an_existing_account(
    app_server: str, tenants: tuple[Tenant, Tenant], oauth_emulator: OAuthEmulator, committed: Any
) -> None:
    alpha, _beta = tenants
    email = f"victim-{uuid.uuid4().hex[:6]}@alpha.test"
    victim = make_member(alpha, email)
    email_verified_mark(user=victim)
    oauth_emulator.set_identity(email, "Impostor", email_verified=False)  # Google did not confirm it
    with http_client(headers={"Accept-Language": "en"}) as client:
        final = _refused_link(client, app_server, alpha)
        assert "has not confirmed this email address" in final.text
    assert not SocialAccount.objects.filter(user=victim).exists()
    assert User.objects.filter(email=email).count() == 1
