"""One Redis client per process (and per decoding mode) for everything that talks to Redis directly:
rate-limit buckets, the ingest drain flag, the wa-web command bus. Cache, Channels and Celery keep their own."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str, decode: bool) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=decode)


def redis_client(*, decode: bool = False) -> redis.Redis:
    return _client(settings.REDIS_URL, decode)


def redis_async_client() -> redis.asyncio.Redis:
    """A client for an event loop (asyncio's; bound to the loop it first runs in, so one per loop, closed
    with it: `async with redis_async_client() as client`). The dispatcher's runners use it for the calls
    their event loop makes itself."""
    return redis.asyncio.Redis.from_url(settings.REDIS_URL)
