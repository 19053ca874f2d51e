"""Helpers for tests that talk to the live server over real HTTP."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from accounts.models import Membership, Role, User
from tenants.models import Tenant

PASSWORD = "correct-horse-battery-9"


class LoopbackTransport(httpx.HTTPTransport):
    """Sends *.localhost to 127.0.0.1 (as browsers do), keeping the Host header and cookies per host."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".localhost"):
            request = httpx.Request(
                request.method,
                request.url.copy_with(host="127.0.0.1"),
                headers=request.headers,
                stream=request.stream,
                extensions=request.extensions,
            )
        return super().handle_request(request)


def http_client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(transport=LoopbackTransport(), timeout=15, **kwargs)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def http_login(client: httpx.Client, base: str, email: str, password: str = PASSWORD) -> httpx.Response:
    page = client.get(f"{base}/login/")
    return client.post(
        f"{base}/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": csrf_from(page.text)},
        headers={"Referer": f"{base}/login/"},
    )


def make_member(tenant: Tenant, email: str, role: str = Role.AGENT, password: str = PASSWORD) -> User:
    user = User.objects.create_user(email=email, password=password, name="Member " + email.split("@")[0])
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


def wait_until(check: Any, timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout:.0f} s: {what or getattr(check, '__name__', check)}")
        time.sleep(interval)


def run_until_none(step: Any, *, limit: int = 50, what: str = "") -> int:
    """Call `step` until it returns None, at most `limit` times (a loop that never ends fails the test)."""
    for rounds in range(limit):
        if step() is None:
            return rounds
    raise AssertionError(f"still not done after {limit} rounds: {what or getattr(step, '__name__', step)}")
