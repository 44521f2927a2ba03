"""A held connection that LISTENs on a channel: how a background loop (the outbox relay, the scheduler's
leader, the models store worker) sleeps until there is work.

The loop is woken by NOTIFYs from other processes' commits and, without a NOTIFY, directly by this
process's own (services/kit/wakeups.py); it looks for work on a timer too, so a lost wake-up costs one
poll, never data. With a lock key the connection also holds a session advisory lock: only the process
holding it listens (and works); a crashed holder's lock goes with its connection.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Awaitable, Callable

import asyncpg

from services.kit.wakeups import Wakeups

log = logging.getLogger(__name__)
Connect = Callable[[], Awaitable[asyncpg.Connection]]
Release = Callable[[asyncpg.Connection], Awaitable[Any]]


@dataclass(eq=False)
class Listening:
    """A connection held to LISTEN on `channel` (and to hold `lock_key`), and the wake-ups ending a wait.

    `connect`/`release` give and take back the connection (a pool's acquire/release, or a connection of
    its own); `on_wake` is called on every wake-up, and what it returns tells this process's committers
    whether the work is taken here (False: wake the other processes too); `prepare` runs on a newly held
    connection before it is used."""

    channel: str
    wakeups: Wakeups
    _: KW_ONLY
    connect: Connect
    release: Release
    lock_key: int | None = None
    on_wake: Callable[[], bool | None] | None = None
    prepare: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
    conn: asyncpg.Connection | None = field(default=None, init=False)
    _woken: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    @classmethod
    def on_pool(cls, pool: asyncpg.Pool, channel: str, wakeups: Wakeups, **options: Any) -> Listening:
        """Held on a connection of `pool`; the pool's reset on release unlistens and unlocks."""
        return cls(channel, wakeups, connect=pool.acquire, release=pool.release, **options)

    @property
    def held(self) -> bool:
        return self.conn is not None and not self.conn.is_closed()

    async def hold(self) -> bool:
        """Hold a listening connection (and the lock, if any); False when another process holds the lock."""
        if self.held:
            return True
        await self.drop()
        conn = await self.connect()
        try:
            if self.lock_key is not None and not await conn.fetchval("SELECT pg_try_advisory_lock($1)",
                                                                      self.lock_key):
                await self.release(conn)
                return False
            await conn.add_listener(self.channel, self._on_notify)  # other processes' commits
            if self.prepare is not None:
                await self.prepare(conn)
        except BaseException:
            await self.release(conn)
            raise
        self.conn = conn
        self.wakeups.listen(self.channel, self.wake)  # this process's commits, without a NOTIFY
        return True

    async def drop(self) -> None:
        """Give the connection back (and with it the lock): after a failure, or to stop."""
        self.wakeups.unlisten(self.channel, self.wake)
        if self.conn is None:
            return
        conn, self.conn = self.conn, None
        with contextlib.suppress(Exception):  # a broken connection has no listener left to remove
            await conn.remove_listener(self.channel, self._on_notify)
        try:
            await self.release(conn)
        except Exception as exc:  # a release that fails terminates the connection: nothing is held
            log.debug("releasing the connection listening on %s: %s", self.channel, exc)

    def wake(self) -> bool | None:
        """There may be work: end the wait (now, or the next one if none is under way)."""
        self._woken.set()
        return self.on_wake() if self.on_wake is not None else None

    def clear(self) -> None:
        """Forget earlier wake-ups: called before looking for work, so one arriving meanwhile is kept."""
        self._woken.clear()

    async def wait(self, timeout: float) -> bool:
        """Sleep until woken or `timeout` seconds have passed; whether it was woken."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        return self._woken.is_set()

    def _on_notify(self, *_: Any) -> None:
        self.wake()


class Backoff:
    """The pauses between attempts while something keeps failing: `first`, doubled each time up to `cap`."""

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def reset(self) -> None:
        """It worked: the next failure waits `first` again."""
        self.delay = self.first

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)
