"""A floor under repeated work: a loop starts its next piece (a batch, a publish round, a scheduling
round) at most every `interval` seconds.

Under load, what arrives while the loop waits joins its next piece: one transaction or round for many
instead of one each. A loop idle for longer than the interval starts at once, so a quiet service adds
no delay.
"""
from __future__ import annotations

import asyncio
import contextlib
import time


class Floor:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_start = -float("inf")

    async def wait(self, enough: asyncio.Event | None = None, *, ready: bool = False) -> None:
        """Sleep until the next start is allowed (at least yield to the loop), then count it as started.

        The floor gathers partial work, it never caps full work: with `ready` (a full piece is already
        there) the start is at once, and a wait ends early when `enough` is set (one gathered meanwhile)."""
        delay = 0.0 if ready else max(0.0, self._last_start + self.interval - time.monotonic())
        if enough is None or delay == 0.0:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(enough.wait(), delay)
        self._last_start = time.monotonic()
