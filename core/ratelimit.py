"""Token buckets in Redis, shared by every worker process: ``take()`` says how long to wait."""

from __future__ import annotations

import time

from core.redis import redis_client

# KEYS[1] bucket; ARGV: rate/s, burst, now (s), cost. Returns the wait in ms (0 = granted).
_TAKE = """
local rate = tonumber(ARGV[1]); local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3]); local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.ceil((cost - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


def take(key: str, *, rate_per_s: float, burst: float | None = None, cost: float = 1) -> float:
    """Take `cost` tokens from bucket `key`; returns 0 when granted, else seconds to wait (nothing taken)."""
    client = redis_client()
    script = client.register_script(_TAKE)
    wait_ms = script(keys=[f"rl:{key}"], args=[rate_per_s, burst or max(rate_per_s, 1), time.time(), cost])
    return int(wait_ms) / 1000.0  # type: ignore[arg-type]
