"""Meta's POST /webhooks/whatsapp/ as production serves it: the ASGI fast path in uvicorn, over HTTP,
including its refusals (too large) and its "try again" when the database cannot take the event."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import sys
import uuid

import httpx

from tests.conftest import ARTIFACTS, _spawn, _stop
from tests.messaging import inbound, meta_envelope, meta_messages_value
from tests.support import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(os.environ["META_APP_SECRET"].encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def test_a_body_over_the_limit_is_refused_with_413(app_server: str) -> None:
    from whatsapp.webhooks import MAX_BODY

    body = b'{"entry": "' + b"x" * (MAX_BODY + 1) + b'"}'
    answer = httpx.post(f"{app_server}/webhooks/whatsapp/", content=body, headers=_signed(body), timeout=30)
    assert answer.status_code == 413


def test_meta_is_told_to_retry_when_the_event_cannot_be_stored(test_env: dict[str, str]) -> None:
    """With its database unreachable, the intake answers 500 so that Meta redelivers; nothing is lost."""
    port, closed_port = (_free_port() for _ in range(2))  # nothing listens on the second one
    env = dict(test_env, DATABASE_URL=f"postgresql://nobody@127.0.0.1:{closed_port}/nowhere")
    args = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    proc = _spawn([*args, "--lifespan", "off", "--no-access-log"], env, "uvicorn-no-db.log")
    try:

        def up() -> bool:
            assert proc.poll() is None, (ARTIFACTS / "uvicorn-no-db.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.3, what="uvicorn without a database")
        message = meta_envelope(meta_messages_value(messages=[inbound("text", f"wamid.nodb.{uuid.uuid4().hex}")]))
        body = json.dumps(message).encode()
        url = f"http://127.0.0.1:{port}/webhooks/whatsapp/"
        answer = httpx.post(url, content=body, headers=_signed(body), timeout=30)  # the pool gives up after 10 s
        assert (answer.status_code, answer.text) == (500, "try again")
        unsigned = httpx.post(f"http://127.0.0.1:{port}/webhooks/whatsapp/", content=body)
        assert unsigned.status_code == 403  # checked before anything else, database or not
    finally:
        _stop(proc)
    assert "meta webhook intake failed" in (ARTIFACTS / "uvicorn-no-db.log").read_text()
