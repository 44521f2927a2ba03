"""Wake-ups after a commit: the outbox relay, the scheduler's engine and the models store worker sleep
until a change they act on is committed (with a polling fallback); this is how they are woken.

Not with `pg_notify` inside the change's transaction: PostgreSQL takes one database-wide lock when a
notifying transaction commits and holds it until the commit record is on disk, so every notifying
commit of the database queues behind the others' disk writes. With three of them per workload (the
submit, the scheduler's accept, the model's record) a slow flush stalled every submit behind it in a
staircase (bench/RESULTS.md, "wake-ups after the commit"). Instead the wake-up is sent once the change
has committed: to a listener of this process directly; to the others by a NOTIFY in a transaction of
its own that writes nothing else (PostgreSQL then commits it without waiting for the disk), one
statement for every channel woken meanwhile. A wake-up that cannot be sent costs its listener's
polling interval, never data: listeners look for work on a timer too.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import asyncpg

from services.kit import metrics

log = logging.getLogger(__name__)
# woken in this process; it returns False when it cannot take the work now (a store worker with no free
# slot), and then the other processes' listeners are woken too
Listener = Callable[[], bool | None]
RETRY_SECONDS = (0.1, 0.5, 2.0)  # then the listeners' polling finds the work


class Wakeups:
    def __init__(self, pool: asyncpg.Pool | None, service: str) -> None:
        self._pool = pool  # None: wake-ups reach this process's listeners only (tools, tests)
        self._service = service
        self._local: dict[str, list[Listener]] = {}
        self._pending: set[str] = set()
        self._sender: asyncio.Task | None = None
        self._closed = False

    def listen(self, channel: str, listener: Listener) -> None:
        """`listener` (of this process) is woken directly by this process's commits on `channel`; no
        NOTIFY is sent for them while it listens and takes the work (returns anything but False)."""
        self._local.setdefault(channel, []).append(listener)

    def unlisten(self, channel: str, listener: Listener) -> None:
        listeners = self._local.get(channel, [])
        if listener in listeners:
            listeners.remove(listener)
        if not listeners:
            self._local.pop(channel, None)

    def after_commit(self, conn: Any, channel: str) -> None:
        """Wake `channel`'s listener once what `conn` (a TracedConnection) is doing has committed: when
        its transaction commits, or at once outside a transaction (the statement has committed)."""
        conn.after_commit(lambda: self.wake(channel))

    def wake(self, channel: str) -> None:
        """Wake `channel`'s listener now: this process's directly, another process's by NOTIFY."""
        listeners = self._local.get(channel)
        if listeners:
            metrics.WAKEUPS.labels(self._service, channel, "local").inc()
            taken = [listener() is not False for listener in list(listeners)]
            if any(taken):
                return
        if self._pool is None or self._closed:
            return
        self._pending.add(channel)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send(), name=f"{self._service}-wakeups")

    async def _send(self) -> None:
        # one NOTIFY statement at a time: wake-ups asked for while it runs go out together in the next
        attempt = 0
        while self._pending:
            channels = sorted(self._pending)
            self._pending.clear()
            try:
                async with self._pool.acquire() as conn:  # type: ignore[union-attr]
                    await conn.execute("SELECT count(pg_notify(channel, '')) FROM unnest($1::text[]) AS channel",
                                       channels)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt >= len(RETRY_SECONDS):
                    log.warning("cannot wake %s (their listeners will find the work when they poll): %s",
                                ", ".join(channels), exc)
                    for channel in channels:
                        metrics.WAKEUPS.labels(self._service, channel, "lost").inc()
                    attempt = 0
                    continue
                self._pending.update(channels)
                await asyncio.sleep(RETRY_SECONDS[attempt])
                attempt += 1
                continue
            attempt = 0
            for channel in channels:
                metrics.WAKEUPS.labels(self._service, channel, "notify").inc()

    async def close(self, grace: float = 5.0) -> None:
        """Send what is pending (the last commits' listeners need not wait for their poll), then stop:
        later wake-ups reach this process's listeners only (the pool is about to close)."""
        self._closed = True
        await self.flush(grace)

    async def flush(self, grace: float = 5.0) -> None:
        """Wait until the wake-ups asked for so far are sent (or given up)."""
        if self._sender is not None and not self._sender.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), grace)
            except (asyncio.TimeoutError, Exception):
                self._sender.cancel()
                await asyncio.gather(self._sender, return_exceptions=True)
