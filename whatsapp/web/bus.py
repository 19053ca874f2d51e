"""Redis keys shared by the `wa-web` process and everyone who talks to a live session."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import redis

from core.redis import redis_client

LEASE_TTL_S = 15.0


def session_key(schema_name: str, channel_id: int) -> str:
    return f"{schema_name}:{channel_id}"


def r() -> redis.Redis:
    return redis_client(decode=True)


def lease_key(key: str) -> str:
    return f"waweb:lease:{key}"


def owner_of(key: str) -> str | None:
    value = r().get(lease_key(key))
    return str(value) if value else None


def command(key: str, op: str, wait_s: float | None = 20.0, **args: Any) -> dict[str, Any] | None:
    """Hand a command to the process that owns the session; wait for its answer unless wait_s is None."""
    command_id = uuid.uuid4().hex
    expires = datetime.now(tz=UTC).timestamp() + (wait_s or 60)
    r().lpush(f"waweb:cmd:{key}", json.dumps({"id": command_id, "op": op, "expires": expires, **args}))
    if wait_s is None:
        return None
    answer = r().blpop([f"waweb:reply:{command_id}"], timeout=wait_s)
    return json.loads(answer[1]) if answer else None


def reply(command_id: str, **answer: Any) -> None:
    pipe = r().pipeline()
    pipe.lpush(f"waweb:reply:{command_id}", json.dumps(answer))
    pipe.expire(f"waweb:reply:{command_id}", 120)
    pipe.execute()


def latest_qr(key: str) -> str:
    return str(r().get(f"waweb:qr:{key}") or "")


def usage(key: str) -> dict[str, Any]:
    """What anti-ban pacing needs: messages sent today by this number, and when it last sent."""
    today = datetime.now(tz=UTC).strftime("%Y%m%d")
    sent, last = r().mget(f"waweb:sent:{key}:{today}", f"waweb:last:{key}")
    return {"sent_today": int(sent or 0), "last_sent_at": float(last) if last else None}


def count_send(key: str) -> None:
    today = datetime.now(tz=UTC).strftime("%Y%m%d")
    pipe = r().pipeline()
    pipe.incr(f"waweb:sent:{key}:{today}")
    pipe.expire(f"waweb:sent:{key}:{today}", 3 * 86400)
    pipe.set(f"waweb:last:{key}", datetime.now(tz=UTC).timestamp())
    pipe.execute()


MEDIA_TTL_S = 24 * 3600


def media_park(media_ref: str, content: bytes, mime: str) -> None:
    redis_client().set(f"waweb:media:{media_ref}", mime.encode() + b"\n" + content, ex=MEDIA_TTL_S)


def media_take(media_ref: str) -> tuple[bytes, str] | None:
    value = redis_client().get(f"waweb:media:{media_ref}")
    if value is None:
        return None
    mime, _, content = bytes(value).partition(b"\n")  # type: ignore[arg-type]
    return content, mime.decode()
