"""The asynchronous intake path: provider webhooks stored with one pooled async round trip, outside
Django's request stack, so intake keeps up with three status callbacks per message sent."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from psycopg_pool import AsyncConnectionPool

from intake.services import DRAIN_FLAG, RawEvent, drain_enqueue, insert_batches, insert_statement

_pool: AsyncConnectionPool | None = None
_redis: aioredis.Redis | None = None


def _conninfo() -> dict[str, Any]:
    db = settings.DATABASES["default"]
    info = {
        "dbname": db["NAME"],
        "user": db["USER"] or None,
        "password": db["PASSWORD"] or None,
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
    }
    return {k: v for k, v in info.items() if v}


async def _get_pool() -> AsyncConnectionPool:
    global _pool
    if _pool is None:
        pool = AsyncConnectionPool(
            kwargs={**_conninfo(), "autocommit": True}, min_size=2, max_size=settings.INTAKE_POOL_MAX, open=False
        )
        await pool.open(wait=True, timeout=10)
        _pool = pool
    return _pool


async def events_store_async(*, provider: str, events: list[RawEvent]) -> int:
    """Same contract as intake.services.events_store."""
    if not events:
        return 0
    pool = await _get_pool()
    inserted = 0
    async with pool.connection() as conn:
        for batch in insert_batches(events):
            sql, params = insert_statement(batch, provider)
            cursor = await conn.execute(sql, params)  # type: ignore[arg-type]
            inserted += cursor.rowcount
    if inserted:
        await _drain_kick_async()
    return inserted


async def _drain_kick_async() -> None:
    global _redis
    if _redis is None:
        _redis = aioredis.Redis.from_url(settings.REDIS_URL)
    if await _redis.set(DRAIN_FLAG, "1", nx=True, ex=60):
        await asyncio.to_thread(drain_enqueue)  # rare: once per drain cycle
