"""Translate DATABASE_URL / REDIS_URL into what Django, Celery and Channels each expect.

Both URLs may point at a unix socket (the embedded services do):
``postgresql://postgres@/postgres?host=/path/to/dir`` and ``unix:///path/redis.sock?db=0``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def database_from_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = unquote(parts.hostname or "") or query.pop("host", "")
    return {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": query,
    }


def celery_url_from_redis_url(url: str) -> str:
    """Kombu spells a unix-socket Redis URL ``redis+socket:///path?virtual_host=N``."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return url
    db = parse_qs(parts.query).get("db", ["0"])[-1]
    return f"redis+socket://{parts.path}?virtual_host={db}"
