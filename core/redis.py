"""One Redis client per process (and per decoding mode) for everything that talks to Redis directly:
rate-limit buckets, the ingest drain flag, the wa-web command bus. Cache, Channels and Celery keep their own."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str, decode: bool) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=decode)


def redis_client(*, decode: bool = False) -> redis.Redis:
    return _client(settings.REDIS_URL, decode)
