"""What the benchmarks share: a database and Redis of their own, the app started from the Procfile, wrk."""

from __future__ import annotations

import os
import re
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


def column_defaults(model: Any, given: str) -> tuple[str, str, list[Any]]:
    """For a raw INSERT into `model`'s table naming the columns in `given` (comma separated): the other
    NOT NULL columns with their Django defaults, as (", col, ...", ", %s, ...", params), so a benchmark's
    bulk INSERT keeps working when a migration adds a column the database itself has no default for."""
    from django.db import connection

    named = {c.strip() for c in given.split(",")}
    cols, params = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.null or field.column in named:
            continue
        default = field.get_default()
        if default is None:
            continue
        cols.append(field.column)
        params.append(field.get_db_prep_save(default, connection))
    return "".join(f", {c}" for c in cols), ", %s" * len(cols), params


class Filling:
    """A cursor whose `INSERT INTO <table> (<columns>) SELECT ...` statements also fill the table's other
    NOT NULL columns with their Django defaults (column_defaults); everything else passes through."""

    PATTERN = re.compile(r"^\s*INSERT INTO (\w+) \(([^()]*)\)\s+(SELECT .*?)(\s+RETURNING [\w, ]+)?\s*$", re.S)

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: list[Any] | None = None) -> Any:
        found = self.PATTERN.match(sql)
        model = self._model(found.group(1)) if found else None
        if found is None or model is None:
            return self.cursor.execute(sql, params)
        table, columns, select, returning = found.groups()
        extra_cols, extra_vals, extra = column_defaults(model, columns)
        end = self._select_list_end(select)  # the extra values go last in the select list
        before = len(re.findall(r"(?<!%)%s", select[:end]))
        params = list(params or [])
        sql = f"INSERT INTO {table} ({columns}{extra_cols}) {select[:end]}{extra_vals}{select[end:]}{returning or ''}"
        return self.cursor.execute(sql, [*params[:before], *extra, *params[before:]])

    @staticmethod
    def _select_list_end(select: str) -> int:
        """Where the select list ends: the first FROM outside parentheses and quotes."""
        depth, quoted = 0, False
        for i, char in enumerate(select):
            if char == "'":
                quoted = not quoted
            elif not quoted and char in "()":
                depth += 1 if char == "(" else -1
            elif not quoted and depth == 0 and select[i : i + 6].upper() == " FROM ":
                return i
        return len(select)

    @staticmethod
    def _model(table: str) -> Any:
        from django.apps import apps

        return next((m for m in apps.get_models() if m._meta.db_table == table), None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


def bench_tenant(slug: str, name: str) -> Any:
    """The benchmark's tenant, on no plan: a benchmark measures the engine, not a plan's limits (the default
    plan for new sign-ups has a month of 1,000 messages and no outgoing webhooks)."""
    from tenants.models import Tenant
    from tenants.services import tenant_create

    tenant = Tenant.objects.filter(slug=slug).first() or tenant_create(name=name, slug=slug, plan_code=None)
    if tenant.plan_id is not None:
        Tenant.objects.filter(pk=tenant.pk).update(plan=None)
        tenant.plan = None
    return tenant
