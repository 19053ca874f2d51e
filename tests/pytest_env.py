"""Loaded with ``-p tests.pytest_env`` before Django is set up: the test session's environment.

- Redis: the same server as the app, but database 9 (broker, cache, channel layer), so a running demo
  never consumes the suite's tasks.
- TEST_SUITE_DB / TEST_SUITE_REDIS_DB name another database pair, so two sessions can run side by side.
- Ports for the live server and the OAuth emulator are chosen now, so in-process settings and the
  subprocesses agree on every URL.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _local_env() -> dict[str, str]:
    path = BASE_DIR / "var" / "local.env"
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = parse_qs(parts.query)
        query["db"] = [str(db)]
        return f"unix://{parts.path}?{urlencode(query, doseq=True)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def _with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


# The suite never touches the development database: pytest-django makes `test_cp_suite` from this name,
# and anything that bypassed it would fail on a database that does not exist rather than write to ours.
database_url = os.environ.get("DATABASE_URL") or _local_env().get("DATABASE_URL", "")
if database_url:
    os.environ["DATABASE_URL"] = _with_dbname(database_url, os.environ.get("TEST_SUITE_DB", "cp_suite"))
os.environ["DB_POOL"] = "0"

redis_url = os.environ.get("REDIS_URL") or _local_env().get("REDIS_URL", "")
if redis_url:
    os.environ["REDIS_URL"] = _with_db(redis_url, int(os.environ.get("TEST_SUITE_REDIS_DB", "9")))

LIVE_PORT = _free_port()
OAUTH_PORT = _free_port()
META_PORT = _free_port()
TWILIO_PORT = _free_port()
RETELL_PORT = _free_port()
OPENAI_PORT = _free_port()
os.environ.update(
    {
        "META_GRAPH_BASE_URL": f"http://127.0.0.1:{META_PORT}",
        "META_APP_SECRET": "test-app-secret",
        "META_VERIFY_TOKEN": "test-verify-token",
        "META_APP_ID": "300000000000001",
        "META_ES_CONFIG_ID": "300000000000002",
        "META_SDK_URL": f"http://127.0.0.1:{META_PORT}/sdk.js",
        "META_ES_ORIGINS": f"http://127.0.0.1:{META_PORT}",
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{TWILIO_PORT}",
        "RETELL_API_BASE_URL": f"http://127.0.0.1:{RETELL_PORT}",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{OPENAI_PORT}/v1",
        "AI_MAX_RETRIES": "2",
        "AI_TIMEOUT_S": "10",
        "PUBLIC_WEBHOOK_BASE_URL": f"http://localhost:{LIVE_PORT}",
        "BASE_DOMAIN": "localhost",
        "BASE_PORT": str(LIVE_PORT),
        "CACHE_KEY_PREFIX": "test",
        "CHANNELS_PREFIX": "test-asgi",
        "GOOGLE_CLIENT_ID": "test-google-client",
        "GOOGLE_CLIENT_SECRET": "test-google-secret",
        "OAUTH_GOOGLE_BASE_URL": f"http://127.0.0.1:{OAUTH_PORT}",
        "FACEBOOK_CLIENT_ID": "test-facebook-client",
        "FACEBOOK_CLIENT_SECRET": "test-facebook-secret",
        "OAUTH_FACEBOOK_BASE_URL": f"http://127.0.0.1:{OAUTH_PORT}",
        "LOGIN_THROTTLE_ATTEMPTS": "5",
        "WA_WEB_ENGINE": "fake",
        "OUTBOUND_URL_ALLOW_LOOPBACK": "true",  # the emulators listen on 127.0.0.1
    }
)
