"""The issue's "done when", as a person does it in a real headless Chromium against the live server: the
voice settings, a number bought and set up until its preflight is green, an agent created and published to
the Retell emulator, an outbound call from a Kanban card that the worker places and the emulators drive
to analysed (transcript, summary, sentiment on the card and the contact's timeline), and a voice campaign
created, launched and paused from its pages."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

from accounts.models import Role
from emulators.retell import RetellEmulator
from emulators.twilio import TwilioEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, TWILIO_SID, TWILIO_TOKEN
from tests.support import PASSWORD, make_member

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
]
SHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


@pytest.fixture(autouse=True)
def _close_playwright_context_connections() -> Iterator[None]:
    yield
    connections.close_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    try:
        with sync_playwright() as pw:
            instance = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            yield instance
            instance.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def in_thread(tenant: Tenant, work: Callable[[], Any]) -> Any:
    """Run services from the test process in a thread of their own (Playwright's loop owns this one)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            connection.set_tenant(tenant)
            result["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"voice-{name}.png"), full_page=True)


def reload_until(page: Page, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Reload the page until `check` holds (the worker and the emulators work in the background)."""
    for _ in range(int(timeout_s * 2)):
        if check():
            return
        page.wait_for_timeout(500)
        page.reload()
    raise AssertionError(f"not reached on {page.url} in {timeout_s:.0f} s")


@pytest.fixture
def retell_emulator_delays(retell_emulator: RetellEmulator) -> Iterator[RetellEmulator]:
    """The emulator, with the delays of its webhooks put back after the test."""
    delays = retell_emulator.delays
    yield retell_emulator
    retell_emulator.delays = delays


def test_a_tenant_sets_up_voice_calls_from_a_card_and_runs_a_campaign_in_the_browser(
    app_server: str,
    tenants: tuple[Tenant, Tenant],
    browser: Browser,
    committed: Any,
    celery_worker: Any,
    retell_emulator_delays: RetellEmulator,
    twilio_emulator: TwilioEmulator,
) -> None:
    retell_emulator = retell_emulator_delays
    alpha, _beta = tenants
    run = uuid.uuid4().hex[:6]
    email = f"voice-browser-{run}@alpha.test"
    make_member(alpha, email, Role.ADMIN)
    base = f"http://alpha.localhost:{app_server.rsplit(':', 1)[1]}"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{base}/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/")

    # Voice settings: the Retell API key and the Twilio voice account (with its SIP trunk, for the import).
    page.goto(f"{base}/voice/settings/")
    key_form = page.locator("form:has(input[name=form][value=api_key])")
    key_form.locator("input[name=api_key]").fill(RETELL_KEY)
    key_form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("api-key-state")).to_contain_text("chave")  # pt-BR: a key is set
    twilio_form = page.locator("form:has(input[name=form][value=twilio])")
    twilio_form.locator("input[name=twilio_account_sid]").fill(TWILIO_SID)
    twilio_form.locator("input[name=twilio_auth_token]").fill(TWILIO_TOKEN)
    twilio_form.locator("input[name=sip_termination_uri]").fill("alpha.pstn.twilio.com")
    twilio_form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("twilio-state")).not_to_contain_text("recusadas")
    shot(page, "settings")

    # A Brazilian number, bought from the app.
    page.goto(f"{base}/voice/numbers/?search=1&country=BR&area_code=11")
    first = page.get_by_test_id("available-row").first
    e164 = first.locator("td").first.inner_text().strip()
    assert e164.startswith("+5511"), e164
    first.locator("button[type=submit]").click()
    expect(page.locator("h1")).to_have_text(e164)
    number_url = page.url

    # An agent that calls from that number and answers it, published to Retell on save.
    page.goto(f"{base}/voice/agents/new/")
    page.fill("#id_name", f"Ana {run}")
    page.select_option("#id_direction", "both")
    page.fill("#id_prompt", "Você é a Ana, da loja. Agende demonstrações.")
    page.fill("#id_begin_message", "Olá! Aqui é a Ana.")
    page.fill("#id_from_number", e164)
    page.get_by_role("button", name="Salvar e publicar").click()
    page.goto(f"{base}/voice/agents/")
    row = page.locator("tr", has_text=f"Ana {run}")
    expect(row).to_contain_text("Publicado")
    shot(page, "agents")

    # The number: its agent, imported into Retell, caller ID verified, a test call; every check green.
    page.goto(number_url)
    page.select_option("form:has(select[name=agent]) select[name=agent]", label=f"Ana {run} (Publicado)")
    page.locator("form:has(select[name=agent]) button[type=submit]").click()
    page.get_by_role("button", name="Importar na Retell").click()
    expect(page.get_by_test_id("check-retell")).to_have_attribute("data-ok", "true")
    page.get_by_role("button", name="Verificar identificador").click()
    if not page.get_by_test_id("caller-id-verified").count():  # Twilio's call with the code still going on
        page.get_by_role("button", name="Verificar", exact=True).click()
    expect(page.get_by_test_id("caller-id-verified")).to_be_visible()
    page.get_by_test_id("test-call").click()
    reload_until(page, lambda: page.locator('[data-testid^="check-"][data-ok="false"]').count() == 0)
    assert page.locator('[data-testid^="check-"][data-ok="true"]').count() == 5
    shot(page, "number-preflight")

    # A lead card: the call from its page, placed by the worker, driven by the emulators to analysed.
    def lead() -> tuple[int, int, int]:
        from crm.models import Contact, Tag
        from kanban.services import board_create, card_create

        contact = Contact.objects.create(phone=f"+55119872{uuid.uuid4().int % 10**5:05d}", name=f"Carla {run}")
        board = board_create(name=f"Vendas {run}")
        card = card_create(board=board, stage=board.stages.first(), title=f"Carla {run}", contact=contact)
        tag = Tag.objects.create(name=f"campanha-{run}")
        for i in range(3):
            person = Contact.objects.create(phone=f"+55119873{i}{uuid.uuid4().int % 10**4:04d}", name=f"Lista {i}")
            person.tags.add(tag)
        return contact.pk, card.pk, board.pk

    contact_id, card_id, board_id = in_thread(alpha, lead)
    page.goto(f"{base}/cards/{card_id}/")
    panel = page.get_by_test_id("card-call-panel")
    panel.locator("select[name=agent]").select_option(label=f"Ana {run}")
    panel.get_by_test_id("card-call").click()
    expect(page).to_have_url(f"{base}/cards/{card_id}/")
    expect(page.locator("body")).to_contain_text(f"Ligando para Carla {run}")
    reload_until(page, lambda: page.get_by_test_id("card-call-summary").count() > 0)
    expect(page.get_by_test_id("card-call-summary")).to_have_text(
        "O cliente aceitou agendar uma demonstração na quinta de manhã."
    )
    expect(page.get_by_test_id("card-call-sentiment")).to_have_text("Positivo")
    page.get_by_test_id("card-call-transcript").locator("summary").click()
    expect(page.get_by_test_id("card-call-transcript")).to_contain_text("Quero, na quinta de manhã.")
    shot(page, "card-call")
    page.goto(f"{base}/boards/{board_id}/")
    expect(page.get_by_test_id("card-call-badge").first).to_contain_text("Positivo")

    page.goto(f"{base}/contacts/{contact_id}/")
    entry = page.get_by_test_id("timeline-entry").filter(has_text="Ligação feita")
    expect(entry).to_contain_text("O cliente aceitou agendar uma demonstração")
    expect(entry).to_contain_text("sentimento: Positivo")
    expect(entry).to_contain_text("Encerrada: o contato desligou")
    entry.locator("summary").click()
    expect(entry.get_by_test_id("timeline-body")).to_contain_text("Pode sim, pode falar.")
    shot(page, "contact-timeline")

    # A voice campaign: created, launched and paused from its pages (calls last a few seconds here, so
    # the pause comes while the first is still on the line).
    retell_emulator.delays = (0.3, 4.0, 4.5)
    page.goto(f"{base}/voice/campaigns/")
    page.get_by_test_id("new-voice-campaign").click()
    page.fill("#id_name", f"Reativação {run}")
    page.select_option("#id_agent", label=f"Ana {run} ({e164})")
    page.select_option("#id_number", value=number_url.rstrip("/").rsplit("/", 1)[1])
    page.select_option("#id_tags", label=f"campanha-{run}")
    page.fill("#id_max_concurrent", "1")
    page.fill("#id_retries", "1")
    page.fill("#id_retry_delay", "30")
    shot(page, "campaign-form")
    page.get_by_test_id("voice-campaign-save").click()
    expect(page.get_by_test_id("voice-campaign-status")).to_have_text("Rascunho")
    page.get_by_test_id("voice-campaign-launch").click()
    dialog = page.get_by_test_id("confirm-dialog")  # the page's own dialog, not the browser's
    expect(dialog).to_contain_text("Começar a ligar para este público agora?")
    dialog.get_by_role("button", name="Confirmar").click()
    expect(page.get_by_test_id("voice-campaign-status")).to_have_text("Em andamento")
    expect(page.get_by_test_id("voice-recipient-row")).to_have_count(3)
    shot(page, "campaign-running")
    page.get_by_test_id("voice-campaign-pause").click()
    expect(page.get_by_test_id("voice-campaign-status")).to_have_text("Pausado")
    expect(page.get_by_test_id("voice-campaign-resume")).to_be_visible()
    shot(page, "campaign-paused")
    page.goto(f"{base}/voice/campaigns/")
    expect(page.get_by_test_id("voice-campaign-row").filter(has_text=f"Reativação {run}")).to_contain_text("Pausado")
    shot(page, "campaigns")

    assert errors == []
    context.close()
