"""One pooled HTTP client per external API per process: keep-alive connections, sane timeouts."""

from __future__ import annotations

from functools import lru_cache

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=20.0, pool=10.0)


@lru_cache(maxsize=32)
def pooled_client(base_url: str) -> httpx.Client:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=50, keepalive_expiry=30)
    return httpx.Client(base_url=base_url, timeout=DEFAULT_TIMEOUT, limits=limits)
