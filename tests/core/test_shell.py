from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from tenants.models import Tenant
from tests.conftest import tenant_client

PO = Path(settings.BASE_DIR) / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po"


def test_every_message_has_a_pt_br_translation() -> None:
    text = PO.read_text()
    entries = re.findall(r'\nmsgid ((?:".*"\n)+)msgstr ((?:".*"\n?)+)', text)
    assert len(entries) > 100
    untranslated = [msgid for msgid, msgstr in entries if msgid.strip() != '""' and msgstr.strip() == '""']
    fuzzy = text.count("#, fuzzy")
    assert untranslated == [] and fuzzy == 0


@pytest.mark.django_db
def test_pwa_manifest_service_worker_and_offline_page(tenant_a: Tenant) -> None:
    client = Client(HTTP_HOST="alpha.localhost")
    manifest = client.get("/manifest.webmanifest")
    assert manifest["Content-Type"] == "application/manifest+json"
    body = manifest.json()
    assert body["display"] == "standalone" and body["start_url"] == "/"
    for icon in body["icons"]:
        assert client.get(icon["src"]).status_code == 200  # hashed static names resolve
    sw = client.get("/sw.js")
    assert sw["Content-Type"] == "application/javascript"
    assert sw["Service-Worker-Allowed"] == "/"
    assert '"/offline/"' in sw.content.decode()
    precached = re.findall(r'"(/static/[^"]+)"', sw.content.decode())
    assert precached and all(client.get(url).status_code == 200 for url in precached)
    assert client.get("/offline/").status_code == 200


@pytest.mark.django_db
def test_front_end_packages_come_from_npm(tenant_a: Tenant, agent_a: User) -> None:
    page = tenant_client(tenant_a, agent_a).get("/").content.decode()
    assert re.search(r"/static/vendor/htmx/htmx\.min\.[0-9a-f]+\.js", page)
    assert re.search(r"/static/vendor/alpinejs/cdn\.min\.[0-9a-f]+\.js", page)
    assert (Path(settings.BASE_DIR) / "package-lock.json").exists()


@pytest.mark.django_db
def test_messages_become_toasts(tenant_a: Tenant, agent_a: User) -> None:
    client = tenant_client(tenant_a, agent_a, lang="en")
    response = client.post("/logout/", follow=True)
    assert 'class="toast info"' in response.content.decode()
    assert "You have signed out." in response.content.decode()


@pytest.mark.django_db
def test_public_pages_render(tenants: tuple[Tenant, Tenant]) -> None:
    client = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en")
    for path in ("/", "/signup/", "/login/", "/auth/social/google/?tenant=alpha", "/offline/"):
        assert client.get(path).status_code == 200, path
    assert client.get("/auth/social/myspace/").status_code == 404
    assert client.get("/workspaces/")["Location"].startswith("/login/")


@pytest.mark.django_db
def test_every_response_carries_a_request_id(tenants: tuple[Tenant, Tenant]) -> None:
    response = Client(HTTP_HOST="localhost").get("/", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-ID"] == "req-123"
    generated = Client(HTTP_HOST="localhost").get("/", HTTP_X_REQUEST_ID="bad id with spaces")
    assert re.fullmatch(r"[0-9a-f]{32}", generated["X-Request-ID"])
