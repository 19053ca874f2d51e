"""Run the dispatcher's real runner in the test's own thread and transaction (inline): the same claim,
send (aiohttp, to the emulators) and bulk record as in production, seeing the test's uncommitted rows."""

from __future__ import annotations

from inbox.dispatcher import Runner, Stats


def send_queued(channel_id: int, *, idle_exit_s: float = 0.3, max_runtime_s: float = 60) -> Stats:
    """Serve the channel until nothing is due now (builds the running campaigns' messages too)."""
    runner = Runner(channel_id, inline=True, idle_exit_s=idle_exit_s, linger_s=0, max_runtime_s=max_runtime_s)
    stats = runner.run()
    assert runner.slot is not None, "another runner holds every lease of this channel"
    return stats
