"""Leader election: one replica runs the engine, holding a PostgreSQL session advisory lock.

The lock lives as long as the leader's connection: a crashed leader's lock is freed by
PostgreSQL and a standby takes over within `retry_seconds`. The same connection LISTENs for
wake-ups: NOTIFYs from the other replicas' commits, and this replica's own directly (services/kit/wakeups.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import asyncpg

from services.kit.db import advisory_lock_key
from services.kit.wakeups import Wakeups
from services.scheduler.store import WAKE_CHANNEL
from services.scheduler.aio import cancel_all, within

log = logging.getLogger(__name__)


def lock_key(schema: str) -> int:
    return advisory_lock_key("scheduler-leader", schema)


class Leadership:
    def __init__(self, postgres_url: str, schema: str, *, lead: Callable[[], Awaitable[None]],
                 on_wake: Callable[..., None], wakeups: Wakeups, retry_seconds: float = 2.0,
                 check_seconds: float = 5.0) -> None:
        self._url = postgres_url
        self._key = lock_key(schema)
        self._lead = lead
        self._on_wake = on_wake
        self._wakeups = wakeups
        self._retry = retry_seconds
        self._check = check_seconds
        self.leading = False

    async def run(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._url)
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key):
                    await self._hold(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: try again
                log.warning("leader election: %s", exc)
            finally:
                self.leading = False
                if conn is not None and not conn.is_closed():
                    try:
                        await within(conn.close(), 5)
                    except Exception:
                        conn.terminate()
            await asyncio.sleep(self._retry)

    async def _hold(self, conn: asyncpg.Connection) -> None:
        log.info("this replica leads the scheduler")
        self.leading = True
        await conn.add_listener(WAKE_CHANNEL, self._on_wake)  # other replicas' commits
        self._wakeups.listen(WAKE_CHANNEL, self._on_wake)  # this replica's commits, without a NOTIFY
        engine = asyncio.create_task(self._lead(), name="scheduler-engine")
        try:
            while not engine.done():
                done, _ = await asyncio.wait({engine}, timeout=self._check)
                if done:
                    break
                await within(conn.fetchval("SELECT 1"), self._check)  # still holding the lock?
            engine.result()  # surfaces the engine's error
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the scheduler engine stopped; leadership is given up")
        finally:
            self._wakeups.unlisten(WAKE_CHANNEL, self._on_wake)
            await cancel_all([engine], insist_after=60)  # its stand-down stops local runs
            log.info("this replica no longer leads the scheduler")
