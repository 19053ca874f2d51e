"""What the benchmarks share: a database and Redis of their own, the app started from the Procfile, wrk."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from config.env import load_env_file  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_env(name: str, port: int) -> dict[str, str]:
    """The environment of every process of a benchmark: database `bench_<name>`, Redis db 8, loopback only."""
    load_env_file(BASE_DIR / "var" / "local.env")
    db = urlsplit(os.environ["DATABASE_URL"])
    redis_url = os.environ["REDIS_URL"]
    if redis_url.startswith("unix://"):
        redis_url = redis_url.split("?")[0] + "?db=8"
    else:
        redis_url = urlunsplit(urlsplit(redis_url)._replace(path="/8"))
    env = dict(os.environ)
    env.update(
        DATABASE_URL=urlunsplit(db._replace(path=f"/bench_{name}")),
        REDIS_URL=redis_url,
        BASE_DOMAIN="localhost",
        BASE_PORT=str(port),
        PORT=str(port),
        HOST="127.0.0.1",
        PUBLIC_WEBHOOK_BASE_URL=f"http://127.0.0.1:{port}",
        META_APP_SECRET=os.environ.get("META_APP_SECRET") or "bench-app-secret",
        PYTHONUNBUFFERED="1",
        PATH=f"{BASE_DIR / '.venv' / 'bin'}:{os.environ['PATH']}",
    )
    return env


def database_ensure(env: dict[str, str]) -> None:
    """Create the benchmark's database if missing and migrate it (reruns are cheap)."""
    import psycopg

    from config.backing import database_from_url

    target = database_from_url(env["DATABASE_URL"])
    admin = database_from_url(os.environ["DATABASE_URL"])
    with psycopg.connect(
        dbname=admin["NAME"],
        user=admin["USER"] or None,
        password=admin["PASSWORD"] or None,
        host=admin["HOST"] or None,
        port=admin["PORT"] or None,
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target["NAME"]]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{target["NAME"]}"')
    subprocess.run([sys.executable, "manage.py", "migrate_schemas", "-v", "0"], cwd=BASE_DIR, env=env, check=True)


def procfile_command(process: str) -> str:
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{process}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(process)


def start(process: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A Procfile process, exactly as production runs it."""
    command = procfile_command(process)
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def wrk_ensure() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.DEVNULL,
    )
    return shutil.which("wrk") or "wrk"


def wrk(url: str, *, duration_s: int, connections: int, script: Path, args: list[str]) -> dict[str, float]:
    import json

    cmd = [
        wrk_ensure(),
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK "))
    result: dict[str, float] = json.loads(line[4:])
    return result


def command_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def bench_channel(**fields: Any) -> Any:
    """A channel for benchmark data, made directly: the benchmarks measure sending and intake, not
    connecting (whose ownership check against the provider the test suite covers)."""
    from django.db import connection

    from inbox.models import Channel
    from inbox.providers import provider_class
    from intake.services import route_register

    found = Channel.objects.filter(kind=fields["kind"], phone_number=fields["phone_number"]).first()
    if found is not None:
        return found
    channel = Channel.objects.create(**fields)
    for kind, external_id in provider_class(channel.kind).route_keys(channel):
        route_register(kind=kind, external_id=external_id, tenant_id=connection.tenant.pk, channel_id=channel.pk)
    return channel
