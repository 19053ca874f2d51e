"""One look, from a person's chair: every page the sidebar links to opens, titles itself with the shared
header, raises no script or Content-Security-Policy error, and fits a phone; the system's dark setting
turns the theme dark."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, expect

from accounts.models import Role
from tenants.models import Tenant
from tests.support import make_member
from tests.test_browser import SHOTS, _login, browser  # noqa: F401 (the module's Chromium fixture)

pytestmark = pytest.mark.browser

WIDEST = """() => [...document.querySelectorAll("main *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 3).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().width))"""
WORKSPACES = ("/conversations/", "/boards/", "/")  # full-screen tools: their own chrome, no page header


@pytest.mark.parametrize(
    ("name", "width", "height", "scheme"), [("desktop", 1280, 900, "light"), ("phone", 390, 844, "dark")]
)
def test_every_sidebar_page_opens_with_the_shared_header(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,  # noqa: F811
    committed: Any,
    meta_emulator: Any,  # it serves the SDK the channel page loads for Embedded Signup
    name: str,
    width: int,
    height: int,
    scheme: Literal["light", "dark"],
) -> None:
    alpha, _ = tenants
    email = f"pages-{uuid.uuid4().hex[:6]}@alpha.test"
    make_member(alpha, email, role=Role.OWNER)
    base = f"http://alpha.localhost:{app_server.rsplit(':', 1)[1]}"
    SHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)
    page.on(  # a request cut short by the next navigation is not a failure
        "requestfailed",
        lambda req: None if "ABORTED" in (req.failure or "") else errors.append(f"{req.url} {req.failure}"),
    )
    try:
        _login(page, base, email)
        page.wait_for_url(f"{base}/")
        links = page.eval_on_selector_all(
            "nav.sidebar a[href^='/']:not([target])", "els => els.map(e => e.getAttribute('href'))"
        )
        assert len(links) >= 15, links  # an owner sees the whole menu
        for href in links:
            response = page.goto(base + href)
            assert response is not None and response.status == 200, href
            if href.split("?")[0] in WORKSPACES:
                continue
            header = page.get_by_test_id("page-header")
            expect(header).to_be_visible()
            expect(header.locator("h1")).not_to_be_empty()
            wide = ""
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 1:
                page.screenshot(path=str(SHOTS / f"pages-overflow-{name}.png"), full_page=True)
                wide = page.evaluate(WIDEST)
            assert overflow <= 1, f"{href} scrolls sideways by {overflow}px at {name} size: {wide}"
        page.goto(f"{base}/contacts/")
        page.screenshot(path=str(SHOTS / f"pages-contacts-{name}.png"), full_page=True)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(15, 20, 25)") == (scheme == "dark"), background  # the tokens follow
        assert errors == [], "\n".join(errors)
    finally:
        context.close()
