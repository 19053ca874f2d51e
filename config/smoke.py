"""`make smoke`: the real start, from a fresh clone of the commit, as a newcomer does it.

Clones HEAD into a temporary folder, runs `make run` there in the background (embedded PostgreSQL and
Redis, every Procfile.dev process), then checks, over HTTP only:
  1. /health answers 200 on the demo tenant;
  2. every Procfile.dev process is still alive 30 s later;
  3. a customer message sent through the Meta emulator's inbound endpoint shows up in the demo inbox (API);
  4. an agent reply sent through the API reaches the emulator and turns `read`.
Then it stops everything it started (the processes and the embedded servers) and removes the clone.
Exits non-zero, with the tail of the log, when any step fails. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
APP = "http://127.0.0.1:8000"
DEMO_HOST = "demo.localhost:8000"
META = "http://127.0.0.1:8710"
START_TIMEOUT_S = float(os.environ.get("SMOKE_START_TIMEOUT_S", "1200"))  # a fresh install included
ALIVE_FOR_S = float(os.environ.get("SMOKE_ALIVE_FOR_S", "30"))
STARTED = re.compile(r"\|\s*([\w-]+)\.1 started \(pid=(\d+)\)")


class SmokeFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"smoke: {text}", flush=True)


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(interval)
    raise SmokeFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def procfile_names(clone: Path) -> list[str]:
    lines = (clone / "Procfile.dev").read_text().splitlines()
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line and not line.startswith("#")]


def pids_started(log: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in STARTED.findall(log.read_text(errors="replace"))}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def demo_client(clone: Path) -> httpx.Client:
    """Log in as the demo owner (the password `make run` printed) and make an API token, as a user would."""
    password = (clone / "var" / "demo_password").read_text().strip()
    web = httpx.Client(base_url=APP, headers={"Host": DEMO_HOST}, timeout=15)
    page = web.get("/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if not csrf:
        raise SmokeFailed(f"no login form on the demo tenant (HTTP {page.status_code})")
    login = web.post(
        "/login/",
        data={"email": "owner@demo.localhost", "password": password, "csrfmiddlewaretoken": csrf.group(1)},
        headers={"Referer": f"http://{DEMO_HOST}/login/"},
    )
    if login.status_code != 302:
        raise SmokeFailed(f"demo owner login failed: HTTP {login.status_code}")
    made = web.post(
        "/api/v1/tokens/",
        json={"name": f"smoke {uuid.uuid4().hex[:6]}"},
        headers={"X-CSRFToken": web.cookies.get("csrftoken") or "", "Referer": f"http://{DEMO_HOST}/"},
    )
    if made.status_code != 201:
        raise SmokeFailed(f"could not create an API token: HTTP {made.status_code} {made.text[:200]}")
    return httpx.Client(
        base_url=APP, headers={"Host": DEMO_HOST, "Authorization": f"Token {made.json()['key']}"}, timeout=15
    )


def conversation_with(api: httpx.Client, phone: str) -> dict[str, Any] | None:
    found = api.get("/api/v1/conversations/", params={"q": phone.lstrip("+")}).json()["results"]
    return next((c for c in found if c["contact"]["phone"] == phone), None)


def check_messages_flow(clone: Path) -> None:
    from emulators.demo import DEMO_PNID

    api = demo_client(clone)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    text = f"Oi, smoke {uuid.uuid4().hex[:8]}"
    sent = httpx.post(
        f"{META}/_emulator/inbound", json={"phone_number_id": DEMO_PNID, "from_phone": phone, "text": text}
    )
    sent.raise_for_status()
    conversation = wait_for("the customer's conversation in the inbox", lambda: conversation_with(api, phone), 60)

    def messages() -> list[dict[str, Any]]:
        return list(api.get(f"/api/v1/conversations/{conversation['id']}/messages/").json()["results"])

    wait_for("the customer's message in the inbox", lambda: any(m["body"] == text for m in messages()), 60)
    say(f"inbound message from {phone} is in the demo inbox")

    reply = api.post(f"/api/v1/conversations/{conversation['id']}/messages/", json={"body": "Olá! Como posso ajudar?"})
    if reply.status_code != 201:
        raise SmokeFailed(f"the reply was refused: HTTP {reply.status_code} {reply.text[:200]}")
    message_id = reply.json()["id"]

    def status() -> str:
        return next((m["status"] for m in messages() if m["id"] == message_id), "")

    wait_for("the reply to turn read", lambda: status() == "read", 90)
    received = httpx.get(f"{META}/_emulator/state").json()["sent_to"]
    if received.get(phone.lstrip("+"), 0) != 1:
        raise SmokeFailed(f"the emulator received {received.get(phone.lstrip('+'), 0)} messages for {phone}, not 1")
    say("the agent's reply reached the Meta emulator once and turned read")


def run() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cp-smoke-"))
    clone = workdir / "c"
    log = workdir / "make-run.log"
    subprocess.run(["git", "clone", "--quiet", str(BASE_DIR), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV"}}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    say(f"make run in a fresh clone ({clone}); log: {log}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        health = f"{APP}/health"

        def healthy() -> bool:
            if proc.poll() is not None:
                raise SmokeFailed(f"`make run` exited with {proc.returncode}")
            return httpx.get(health, headers={"Host": DEMO_HOST}, timeout=5).status_code == 200

        wait_for("/health 200 on the demo tenant", healthy, START_TIMEOUT_S, interval=2)
        say("/health answers 200 on the demo tenant")
        names = procfile_names(clone)
        started = wait_for("every Procfile.dev process to start", lambda: set(names) <= set(pids_started(log)), 60)
        assert started
        time.sleep(ALIVE_FOR_S)
        pids = pids_started(log)
        dead = [name for name in names if not alive(pids[name])]
        if dead or proc.poll() is not None:
            raise SmokeFailed(f"processes gone {ALIVE_FOR_S:.0f} s after the start: {dead or 'honcho'}")
        say(f"all {len(names)} processes alive after {ALIVE_FOR_S:.0f} s: {', '.join(names)}")
        check_messages_flow(clone)
        say("passed")
    except Exception:
        tail = log.read_text(errors="replace").splitlines()[-60:]
        print("\n".join(tail), file=sys.stderr)
        raise
    finally:
        stop(proc, log, clone, env)
        shutil.rmtree(workdir, ignore_errors=True)


def stop(proc: subprocess.Popen[bytes], log: Path, clone: Path, env: dict[str, str]) -> None:
    """Everything started: honcho and its processes, then the embedded servers."""
    children = list(pids_started(log).values()) if log.exists() else []
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in children:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if (clone / ".venv" / "bin" / "python").exists():
        subprocess.run(
            [str(clone / ".venv" / "bin" / "python"), "-m", "config.devservices", "down"],
            cwd=clone,
            env=env,
            check=False,
            timeout=60,
        )


if __name__ == "__main__":
    try:
        run()
    except SmokeFailed as exc:
        say(f"FAILED: {exc}")
        sys.exit(1)
