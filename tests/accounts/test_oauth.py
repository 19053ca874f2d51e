"""The full OAuth round trip over HTTP: tenant login page -> main domain -> emulated provider ->
callback on the main domain (the one redirect URI) -> signed hand-off -> logged in on the tenant."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from emulators.oauth import OAuthEmulator
from tenants.models import Tenant
from tests.support import csrf_from, http_client, make_member


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
    make_member(alpha, email)
    oauth_emulator.set_identity(email, "Olivia Auth")
    redeemed_before = oauth_emulator.redeemed

    with http_client() as client:
        final = _social_login(client, app_server, alpha, provider)
        assert final.status_code == 200
        port = app_server.rsplit(":", 1)[1]
        assert str(final.url) == f"http://alpha.localhost:{port}/"
        assert email in final.text
    assert oauth_emulator.redeemed == redeemed_before + 1  # the code was exchanged server to server


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
