"""Leader election: one replica runs the engine, holding a PostgreSQL session advisory lock.

The lock lives as long as the leader's connection: a crashed leader's lock is freed by
PostgreSQL and a standby takes over within `retry_seconds`. The same connection LISTENs for
wake-ups: NOTIFYs from the other replicas' commits, and this replica's own directly (services/kit/listening.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import asyncpg

from services.kit.db import advisory_lock_key
from services.kit.listening import Listening
from services.kit.wakeups import Wakeups
from services.scheduler.aio import cancel_all, within
from services.scheduler.store import WAKE_CHANNEL

log = logging.getLogger(__name__)


def lock_key(schema: str) -> int:
    return advisory_lock_key("scheduler-leader", schema)


class Leadership:
    def __init__(self, postgres_url: str, schema: str, *, lead: Callable[[], Awaitable[None]],
                 on_wake: Callable[..., None], wakeups: Wakeups, retry_seconds: float = 2.0,
                 check_seconds: float = 5.0) -> None:
        # on a connection of its own, outside the pool: the lock lives exactly as long as it
        self._listening = Listening(WAKE_CHANNEL, wakeups, connect=lambda: asyncpg.connect(postgres_url),
                                    release=_close, lock_key=lock_key(schema), on_wake=on_wake)
        self._lead = lead
        self._retry = retry_seconds
        self._check = check_seconds
        self.leading = False

    async def run(self) -> None:
        while True:
            try:
                if await self._listening.hold():
                    await self._hold()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: try again
                log.warning("leader election: %s", exc)
            finally:
                self.leading = False
                await self._listening.drop()
            await asyncio.sleep(self._retry)

    async def _hold(self) -> None:
        log.info("this replica leads the scheduler")
        self.leading = True
        engine = asyncio.create_task(self._lead(), name="scheduler-engine")
        try:
            while not engine.done():
                done, _ = await asyncio.wait({engine}, timeout=self._check)
                if done:
                    break
                await within(self._listening.conn.fetchval("SELECT 1"), self._check)  # still holding the lock?
            engine.result()  # surfaces the engine's error
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the scheduler engine stopped; leadership is given up")
        finally:
            await cancel_all([engine], insist_after=60)  # its stand-down stops local runs
            log.info("this replica no longer leads the scheduler")


async def _close(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await within(conn.close(), 5)
    except Exception:
        conn.terminate()
