"""The shared token buckets survive a clock that goes back (another host's, a stepped clock)."""

from __future__ import annotations

import datetime
import uuid

import time_machine

from core import ratelimit


def test_a_bucket_used_by_a_later_clock_still_grants_to_an_earlier_one() -> None:
    key = f"test:{uuid.uuid4().hex}"
    later = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC)
    with time_machine.travel(later, tick=False):
        assert ratelimit.take_up_to(key, rate_per_s=10, wanted=10, burst=10)[0] == 10  # emptied
        assert ratelimit.take(key + ":single", rate_per_s=1, burst=1) == 0
    with time_machine.travel(later - datetime.timedelta(days=2), tick=True):
        granted, wait = ratelimit.take_up_to(key, rate_per_s=10, wanted=10, burst=10)
        assert granted == 0 and wait <= 0.2  # nothing refilled for the time "in the future", no freeze
        assert ratelimit.take(key + ":single", rate_per_s=1, burst=1) <= 1.0
    with time_machine.travel(later - datetime.timedelta(days=2) + datetime.timedelta(seconds=1), tick=False):
        assert ratelimit.take_up_to(key, rate_per_s=10, wanted=10, burst=10)[0] >= 9  # refills from here on
