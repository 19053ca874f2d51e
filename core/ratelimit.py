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
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
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


# KEYS[1] bucket; ARGV: rate/s, burst, now (s), wanted. Grants what is there, up to `wanted`.
# Returns {granted, wait in ms until the next token when nothing was granted}.
_TAKE_UP_TO = """
local rate = tonumber(ARGV[1]); local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3]); local wanted = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
-- A clock behind the stored one (another host's, or one stepped back) refills nothing but never
-- freezes the bucket until the later clock is reached.
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
local granted = math.min(wanted, math.floor(tokens))
local wait = 0
if granted > 0 then tokens = tokens - granted else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {granted, wait}
"""

# The pair rate: KEYS are one bucket per recipient; ARGV: rate/s, burst, now. Returns, per key, 0 when a
# token was taken, else the wait in ms (nothing taken for that key).
_PAIR = """
local rate = tonumber(ARGV[1]); local burst = tonumber(ARGV[2]); local now = tonumber(ARGV[3])
local out = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
  if tokens >= 1 then
    tokens = tokens - 1; out[i] = 0
    redis.call('HSET', key, 'tokens', tokens, 'ts', math.max(now, ts))
  else
    out[i] = math.ceil((1 - tokens) / rate * 1000) + math.max(0, math.ceil((ts - now) * 1000))
  end
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 60000)
end
return out
"""

# KEYS[1] a recipient's bucket; ARGV: seconds from now. The provider said "too fast to this phone":
# nothing more goes to it before then (the bucket is emptied and its clock moved forward).
_PENALTY = """
local until_ts = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'ts')
local ts = tonumber(state[1]) or 0
redis.call('HSET', KEYS[1], 'tokens', 0, 'ts', math.max(ts, until_ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(0, until_ts - tonumber(ARGV[2])) * 1000) + 60000)
return 1
"""


def take_up_to(key: str, *, rate_per_s: float, wanted: int, burst: float | None = None) -> tuple[int, float]:
    """Take up to `wanted` whole tokens from bucket `key` (shared by every process). Returns (granted,
    seconds until a token is there when none was granted)."""
    client = redis_client()
    script = client.register_script(_TAKE_UP_TO)
    granted, wait_ms = script(  # type: ignore[misc]
        keys=[f"rl:{key}"], args=[rate_per_s, burst or max(rate_per_s, 1), time.time(), max(1, wanted)]
    )
    return int(granted), int(wait_ms) / 1000.0


def pair_take(keys: list[str], *, rate_per_s: float, burst: float) -> list[float]:
    """One token from each recipient's bucket in one call: 0 for each granted, else its wait in seconds."""
    if not keys:
        return []
    client = redis_client()
    script = client.register_script(_PAIR)
    waits = script(keys=[f"rl:{k}" for k in keys], args=[rate_per_s, burst, time.time()])
    return [int(w) / 1000.0 for w in waits]  # type: ignore[union-attr]


def pair_penalize(key: str, *, seconds: float) -> None:
    now = time.time()
    client = redis_client()
    client.register_script(_PENALTY)(keys=[f"rl:{key}"], args=[now + seconds, now])
