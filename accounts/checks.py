"""Deployment checks, run at every start: a production process (DEBUG off) whose public URLs are https
but whose transport security settings are off says so (the usual cause: BEHIND_TLS_PROXY not set).
Plain-HTTP local runs (the demo) stay quiet; `manage.py check --deploy` adds Django's own checks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

TRANSPORT_SETTINGS = {
    "SECURE_SSL_REDIRECT": ("accounts.W001", "plain HTTP is not redirected to HTTPS"),
    "SESSION_COOKIE_SECURE": ("accounts.W002", "the session cookie may travel over plain HTTP"),
    "CSRF_COOKIE_SECURE": ("accounts.W003", "the CSRF cookie may travel over plain HTTP"),
    "SECURE_HSTS_SECONDS": ("accounts.W004", "browsers are not told to use HTTPS only (HSTS)"),
}


@register(Tags.security)
def security_settings_check(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.DEBUG:
        return []
    found: list[Warning] = []
    if settings.BASE_SCHEME == "https":
        for name, (check_id, risk) in TRANSPORT_SETTINGS.items():
            if not getattr(settings, name, None):
                found.append(Warning(f"{name} is off: {risk}.", hint="Set BEHIND_TLS_PROXY=true.", id=check_id))
    if "csp.middleware.CSPMiddleware" not in settings.MIDDLEWARE or not getattr(
        settings, "CONTENT_SECURITY_POLICY", None
    ):
        found.append(Warning("No Content-Security-Policy is sent.", id="accounts.W005"))
    return found
