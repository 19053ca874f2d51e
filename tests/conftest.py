"""Test session: one test database, two tenants made once and shared, a live server, a real worker.

Most tests use pytest-django's ``db`` (a transaction rolled back after each test) inside a tenant
schema. Tests that cross a process boundary (live server, Celery worker, browser) write committed data
with unique names instead, through ``committed``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.middleware import SESSION_TENANT_KEY
from accounts.models import Role, User
from emulators.meta import App, MetaEmulator, PhoneNumber
from emulators.oauth import OAuthEmulator
from emulators.openai import OpenAIEmulator
from emulators.retell import RetellEmulator
from emulators.twilio import TwilioEmulator
from tenants.models import Tenant
from tenants.services import tenant_create
from tests import pytest_env
from tests.support import make_member, wait_until

BASE_DIR = Path(settings.BASE_DIR)
ARTIFACTS = BASE_DIR / "test-artifacts"


@pytest.fixture(scope="session")
def django_db_setup(
    request: Any, django_test_environment: Any, django_db_blocker: Any, django_db_keepdb: bool
) -> Iterator[None]:
    """Always make the test database. pytest-django makes one only when some collected test uses `db`;
    a session of only `committed` tests would otherwise run against the configured database itself."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, keepdb=django_db_keepdb, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        _end_leftover_sessions()
        teardown_databases(config, verbosity=0, keepdb=django_db_keepdb)


def _end_leftover_sessions() -> None:
    """A thread or child process a test started may still hold a connection to the test database when
    the session ends (a QR session's reader, an in-process server), and DROP DATABASE refuses while
    it does. End those sessions, naming each, then drop."""
    from django.db import connections

    name = connection.settings_dict["NAME"]
    connections.close_all()
    with connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, state, left(query, 120) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        for pid, application, state, query in cursor.fetchall():
            print(f"ending leftover session {pid} on {name}: {application!r} {state} {query!r}", file=sys.stderr)
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


@pytest.fixture(scope="session")
def tenants(django_db_setup: Any, django_db_blocker: Any) -> tuple[Tenant, Tenant]:
    """Two tenants, created once per session (schema creation is the slow part)."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        # No plan: the suite's tenants are unlimited (tests about plans give one inside the test).
        alpha = Tenant.objects.filter(slug="alpha").first() or tenant_create(
            name="Alpha Ltda", slug="alpha", plan_code=None
        )
        beta = Tenant.objects.filter(slug="beta").first() or tenant_create(
            name="Beta SA", slug="beta", language="en", plan_code=None
        )
        Tenant.objects.filter(pk__in=[alpha.pk, beta.pk]).update(plan=None)
        for tenant in (alpha, beta):
            _quiet_hours_off(tenant)
        connection.set_schema_to_public()
    return alpha, beta


def _quiet_hours_off(tenant: Tenant) -> None:
    """The suite's tenants start with quiet hours off: a test's outcome never hangs on the hour or the
    weekday CI happens to run at. Tests of quiet hours turn them on (and back off) themselves."""
    from campaigns.models import QuietHours

    connection.set_tenant(tenant)
    QuietHours.objects.update_or_create(pk=1, defaults={"enabled": False})


@pytest.fixture
def tenant_a(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[0]


@pytest.fixture
def tenant_b(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[1]


@pytest.fixture
def in_tenant_a(db: Any, tenant_a: Tenant) -> Iterator[Tenant]:
    connection.set_tenant(tenant_a)
    yield tenant_a
    connection.set_schema_to_public()


def tenant_client(tenant: Tenant, user: User | None = None, lang: str | None = None) -> Client:
    client = Client(HTTP_HOST=f"{tenant.slug}.localhost")
    if lang:
        client.cookies["django_language"] = lang  # the user's own choice; else the tenant's language
    if user is not None:
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        session = client.session
        session[SESSION_TENANT_KEY] = tenant.schema_name
        session.save()
    return client


@pytest.fixture
def owner_a(db: Any, tenant_a: Tenant) -> User:
    return make_member(tenant_a, f"owner-{uuid.uuid4().hex[:8]}@alpha.test", Role.OWNER)


@pytest.fixture
def agent_a(db: Any, tenant_a: Tenant) -> User:
    return make_member(tenant_a, f"agent-{uuid.uuid4().hex[:8]}@alpha.test", Role.AGENT)


@pytest.fixture
def committed(django_db_blocker: Any) -> Iterator[None]:
    """Real commits, visible to other processes. Use unique names: nothing is rolled back."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()
        # The suite's tenants have no plan (unlimited): a committed test that gives one must take it back,
        # or every later test meets its limits. Put back here and reported, not left to fail others.
        left = list(Tenant.objects.filter(slug__in=("alpha", "beta")).exclude(plan=None).values_list("slug", flat=True))
        if left:
            Tenant.objects.filter(slug__in=left).update(plan=None)
            pytest.fail(f"this test left {', '.join(left)} on a plan")


@pytest.fixture(scope="session", autouse=True)
def _asgi_in_process(django_db_setup: Any) -> Iterator[None]:
    """Tests post Meta webhooks to the ASGI app in this process (tests.messaging.post_meta); its intake
    pool is closed before the test database is dropped."""
    yield
    from tests.messaging import asgi_close

    asgi_close()


@pytest.fixture(autouse=True)
def _clean_state_between_tests() -> Iterator[None]:
    from django.utils import translation

    connection.set_schema_to_public()
    translation.activate(settings.LANGUAGE_CODE)  # a language a test activated never leaks into the next
    yield
    connection.set_schema_to_public()
    translation.activate(settings.LANGUAGE_CODE)
    cache_keys_delete()


def cache_keys_delete() -> None:
    """Forget throttling counters and hand-off nonces: the cache's keys and the login throttles. The broker, results,
    channel layer and wa-web leases share the Redis database under their own prefixes and are never
    flushed, so a test that leaves work behind shows up instead of being wiped."""
    from core.redis import redis_client

    client = redis_client()
    prefix = settings.CACHES["default"]["KEY_PREFIX"].encode()
    # django-tenants' cache keys are "<schema>:<prefix>:<version>:<key>"
    batch = [key for key in client.scan_iter(match=b"*:" + prefix + b":*", count=500) if key.split(b":")[1] == prefix]
    batch += list(client.scan_iter(match=b"throttle:*", count=500))  # login throttles (accounts), global by design
    batch += list(client.scan_iter(match=b"rl:*:pair:*", count=500))  # the dispatcher's per-recipient pair rate
    if batch:
        client.delete(*batch)


# --- processes --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_env(tenants: tuple[Tenant, Tenant]) -> dict[str, str]:
    """The environment of a subprocess that must see the test database."""
    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgresql://{db['USER']}@/{db['NAME']}?host={db['HOST']}"
        if db["HOST"].startswith("/")
        else (f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}")
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / log_name).open("wb")
    return subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def oauth_emulator() -> Iterator[OAuthEmulator]:
    emulator = OAuthEmulator(
        {
            os.environ["GOOGLE_CLIENT_ID"]: os.environ["GOOGLE_CLIENT_SECRET"],
            os.environ["FACEBOOK_CLIENT_ID"]: os.environ["FACEBOOK_CLIENT_SECRET"],
        },
        port=pytest_env.OAUTH_PORT,
    ).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def app_server(test_env: dict[str, str], oauth_emulator: OAuthEmulator) -> Iterator[str]:
    """The ASGI app as production runs it (uvicorn), on loopback. Yields the main-domain URL."""
    port = pytest_env.LIVE_PORT
    proc = _spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
        ],
        test_env,
        "live-server.log",
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, (ARTIFACTS / "live-server.log").read_text()
            return False

    wait_until(healthy, timeout=60, interval=0.3)
    yield f"http://localhost:{port}"
    _stop(proc)


WORKERS: list[Worker] = []  # started in this session (alive or not)
_intake_held = False


def intake_hold() -> None:
    """Stop any running test worker from consuming the ingest queue until this test ends (the teardown
    hook below resumes it), and wait until it has no drain running or prefetched: a test that posts
    committed webhook events then applies them with its own drain, inside its transaction."""
    global _intake_held
    if _intake_held or not any(w.proc is not None and w.proc.poll() is None for w in WORKERS):
        return
    from config.celery import app
    from intake.services import DRAIN_TASK

    _intake_held = True
    assert app.control.cancel_consumer("ingest", reply=True, timeout=5), "the worker did not answer"

    def no_drain() -> bool:
        inspect = app.control.inspect(timeout=1)
        busy = [*(inspect.active() or {}).values(), *(inspect.reserved() or {}).values()]
        return not any(task["name"] == DRAIN_TASK for tasks in busy for task in tasks)

    wait_until(no_drain, timeout=30, interval=0.2, what="the worker to finish its drain")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After every fixture is torn down (the test's transaction rolled back): delete the webhook events
    the test stored through the real intake, and let the worker consume the ingest queue again."""
    global _intake_held
    yield
    from tests.messaging import POSTED_EVENTS

    if POSTED_EVENTS:
        import psycopg

        db = connection.settings_dict
        info = {"dbname": db["NAME"], "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"]}
        try:
            with psycopg.connect(
                **{k: v for k, v in info.items() if v}, port=db["PORT"] or None, autocommit=True
            ) as conn:
                conn.execute(
                    "DELETE FROM public.intake_webhookevent WHERE provider = 'meta' AND event_id = ANY(%s)",
                    [list(POSTED_EVENTS)],
                )
        except psycopg.OperationalError:
            if nextitem is not None:
                raise
            # The session's last test: its database was dropped with the session fixtures, rows and all.
        POSTED_EVENTS.clear()
    if _intake_held:
        from config.celery import app

        _intake_held = False
        app.control.add_consumer("ingest", reply=True, timeout=5)


class Worker:
    """The suite's real Celery worker process (every queue, 2 pool processes). `kill()` is a crash: SIGKILL
    to its whole process group, pool children included; `start()` brings a new one up."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from config.celery import QUEUES, app

        WORKERS.append(self)

        ARTIFACTS.mkdir(exist_ok=True)
        # Every queue in one process, with the children production spreads over two workers (the Procfile's
        # `worker`, and `dispatcher` whose runners linger on the dispatch queue).
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(QUEUES), "-c", "4"]
        args += ["-n", f"test-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", "-l", "INFO"]
        log = (ARTIFACTS / "celery-worker.log").open("ab")
        self.proc = subprocess.Popen(
            args, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc = self.proc

        def ready() -> bool:
            assert proc.poll() is None, (ARTIFACTS / "celery-worker.log").read_text()[-4000:]
            return bool(app.control.ping(timeout=0.5))

        wait_until(ready, timeout=60, interval=0.5, what="the Celery worker to answer a ping")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _stop(self.proc)


@pytest.fixture(scope="session")
def celery_worker(test_env: dict[str, str]) -> Iterator[Worker]:
    """A real Celery worker process on every queue (not eager mode)."""
    worker = Worker(test_env)
    worker.start()
    yield worker
    worker.stop()


# --- channels and provider emulators -----------------------------------------------------------

WA_TOKEN = "test-token"
WA_PNID, WA_WABA, WA_NUMBER = "100000000000001", "200000000000001", "+5511911110000"
TWILIO_SID, TWILIO_TOKEN = "ACa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "alpha-twilio-token"
SMS_NUMBER = "+5511900000001"


@pytest.fixture(scope="session")
def channels(
    tenants: tuple[Tenant, Tenant], django_db_blocker: Any, meta_emulator: MetaEmulator, twilio_emulator: TwilioEmulator
) -> dict[str, int]:
    """Alpha's WhatsApp Cloud and SMS channels (ids), committed once, routes registered (ownership proved
    against the emulators, as against Meta and Twilio)."""
    from inbox.models import Channel
    from inbox.services import channel_create

    alpha = tenants[0]
    with django_db_blocker.unblock():
        connection.set_tenant(alpha)
        wa = Channel.objects.filter(phone_number_id=WA_PNID).first() or channel_create(
            kind="whatsapp_cloud",
            name="WhatsApp Alpha",
            phone_number=WA_NUMBER,
            credentials={"access_token": WA_TOKEN},
            waba_id=WA_WABA,
            phone_number_id=WA_PNID,
        )
        sms = Channel.objects.filter(kind="sms_twilio").first() or channel_create(
            kind="sms_twilio",
            name="SMS Alpha",
            phone_number=SMS_NUMBER,
            credentials={"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN},
        )
        connection.set_schema_to_public()
    return {"whatsapp": wa.pk, "sms": sms.pk}


@pytest.fixture(scope="session")
def meta_emulator() -> Iterator[MetaEmulator]:
    emulator = MetaEmulator(
        app_secret=os.environ["META_APP_SECRET"],
        webhook_url=f"{os.environ['PUBLIC_WEBHOOK_BASE_URL']}/webhooks/whatsapp/",
        port=pytest_env.META_PORT,
        tokens={WA_TOKEN},
        delays=(0.05, 0.15, 0.3),
        numbers={WA_PNID: PhoneNumber(waba_id=WA_WABA, display_phone_number=WA_NUMBER, token=WA_TOKEN)},
        # the platform's own Meta app: Embedded Signup's codes are issued to it and exchanged with its secret
        apps={
            os.environ["META_APP_ID"]: App(
                secret=os.environ["META_APP_SECRET"],
                webhook_url=f"{os.environ['PUBLIC_WEBHOOK_BASE_URL']}/webhooks/whatsapp/",
            )
        },
    ).start()
    emulator.signup.config_id = os.environ["META_ES_CONFIG_ID"]
    yield emulator
    emulator.callbacks.close()
    emulator.stop()


@pytest.fixture(scope="session")
def twilio_emulator() -> Iterator[TwilioEmulator]:
    emulator = TwilioEmulator(
        accounts={TWILIO_SID: TWILIO_TOKEN},
        inbound_urls={SMS_NUMBER: f"{os.environ['PUBLIC_WEBHOOK_BASE_URL']}/webhooks/twilio/inbound/"},
        port=pytest_env.TWILIO_PORT,
        delays=(0.05, 0.15),
    ).start()
    yield emulator
    emulator.callbacks.close()
    emulator.stop()


RETELL_KEY = "key_alpha_retell_test"


@pytest.fixture(scope="session")
def retell_emulator() -> Iterator[RetellEmulator]:
    emulator = RetellEmulator(port=pytest_env.RETELL_PORT, delays=(0.05, 0.15, 0.3)).start()
    yield emulator
    emulator.callbacks.close()
    emulator.stop()


OPENAI_KEY = "sk-test-alpha"


@pytest.fixture(scope="session")
def openai_session() -> Iterator[OpenAIEmulator]:
    emulator = OpenAIEmulator(port=pytest_env.OPENAI_PORT, keys={OPENAI_KEY}, retry_after_ms=20)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def openai_emulator(openai_session: OpenAIEmulator) -> Iterator[OpenAIEmulator]:
    """The OpenAI-compatible emulator (session-wide server), with an empty script for this test."""
    openai_session.reset()
    yield openai_session
    openai_session.reset()
