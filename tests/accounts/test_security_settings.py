"""Browser-facing hardening: the Content-Security-Policy on every page (inline scripts only with this
response's nonce, no inline handlers in any template), idle sessions, the production transport settings
and the start-up check that catches them turned off."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django_tenants.utils import schema_context

from accounts.checks import security_settings_check
from accounts.models import User
from kanban.services import board_create
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def _policy(response: Any) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split("; ") if part}


def test_pages_carry_a_policy_and_inline_scripts_carry_its_nonce(tenant_a: Tenant, agent_a: User) -> None:
    landing = Client(HTTP_HOST="localhost").get("/")
    policy = _policy(landing)
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    with schema_context(tenant_a.schema_name):
        board = board_create(name="Nonce board")
    page = tenant_client(tenant_a, agent_a).get(f"/boards/{board.pk}/")  # has an inline script
    nonces = [v for v in _policy(page)["script-src"] if v.startswith("'nonce-")]
    assert len(nonces) == 1
    nonce = nonces[0][len("'nonce-") : -1]
    scripts = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)([^>]*)>", page.content.decode())
    assert scripts and all(f'nonce="{nonce}"' in attrs for attrs in scripts)


def test_no_template_uses_inline_event_handlers_or_unnonced_scripts() -> None:
    handler = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
    bare_script = re.compile(r"<script(?![^>]*\b(?:src|nonce)=)(?![^>]*application/json)[^>]*>")
    offenders = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if handler.search(path.read_text()) or bare_script.search(path.read_text())
    ]
    assert offenders == []


def test_sessions_end_when_idle(tenant_a: Tenant, agent_a: User) -> None:
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    response = tenant_client(tenant_a, agent_a).get("/")
    assert response.status_code == 200
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == 12 * 3600  # every request pushes the expiry forward
    assert cookie["httponly"]


def test_behind_tls_the_transport_settings_are_on(test_env: dict[str, str]) -> None:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_AGE]))"
    )
    env = dict(
        test_env,
        BEHIND_TLS_PROXY="true",
        DEBUG="false",
        SESSION_IDLE_TIMEOUT_S="3600",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=settings.BASE_DIR
    )
    import json

    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        True,
        31536000,
        True,
        True,
        True,
        ["HTTP_X_FORWARDED_PROTO", "https"],
        3600,
    ]


def test_the_start_up_check_warns_when_https_is_served_without_them(settings: Any) -> None:
    settings.DEBUG = False
    settings.BASE_SCHEME = "https"
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 0
    ids = {w.id for w in security_settings_check()}
    assert ids == {"accounts.W001", "accounts.W002", "accounts.W004"}
    settings.SECURE_SSL_REDIRECT = settings.SESSION_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 3600
    assert security_settings_check() == []
    settings.BASE_SCHEME = "http"  # the local demo over plain HTTP: quiet
    settings.SECURE_SSL_REDIRECT = False
    assert security_settings_check() == []
    settings.CONTENT_SECURITY_POLICY = {}
    assert {w.id for w in security_settings_check()} == {"accounts.W005"}
