"""Leader election: one replica runs the engine, holding a lease in PostgreSQL with a fencing token.

The lease is one row (`leadership`): the holder, an epoch bumped on every takeover, and an expiry the
leader renews every `check_seconds`. A replica takes it only once it has expired, so a leader cut off
from PostgreSQL (a restart, a failover, its connections terminated) goes on leading, its runs going,
while it tries to renew; it stands down one renewal interval before the lease runs out (its own clock
starts before PostgreSQL's, and no renewal try outlasts what is left), or at once when another replica
holds it. Before what no trigger can fence (stopping a runner's run, changing Redis) the engine checks
that its term still holds (STILL_LEADING). The epoch is the fencing token: the engine's connections carry it
(`avatar.leader_epoch`) and a trigger on `jobs` and `runs` refuses any write whose epoch is no longer
the lease's (migrations/0002_leadership.sql), so a stale leader can never write after a takeover.

A session advisory lock on a connection of its own decides who may try: its holder LISTENs for the
engine's wake-ups (NOTIFYs from the other replicas' commits, this replica's own directly,
services/kit/listening.py). Losing that connection costs wake-ups (the engine still ticks), not the lease.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from services.kit.db import advisory_lock_key, create_pool
from services.kit.listening import Listening
from services.kit.wakeups import Wakeups
from services.scheduler.aio import cancel_all, within
from services.scheduler.store import WAKE_CHANNEL

log = logging.getLogger(__name__)
EPOCH_SETTING = "avatar.leader_epoch"  # the fencing token a connection writes under
FENCED = "P0L01"  # the SQLSTATE of a write refused under a term that is over (migrations/0002_leadership.sql)

# Take the lease when it has expired (or this replica holds it): a takeover bumps the epoch; the row
# lock (FOR UPDATE) waits for the writes in flight under the old epoch, which hold it FOR KEY SHARE.
_TAKE = """
WITH current AS (SELECT * FROM leadership FOR UPDATE)
UPDATE leadership l SET
    epoch = CASE WHEN c.holder = $1 AND c.expires_at > now() THEN c.epoch ELSE c.epoch + 1 END,
    holder = $1, taken_at = CASE WHEN c.holder = $1 AND c.expires_at > now() THEN c.taken_at ELSE now() END,
    expires_at = now() + make_interval(secs => $2)
FROM current c
WHERE c.holder = $1 OR c.expires_at <= now()
RETURNING l.epoch"""
# a lease that ran out is not renewed, even if nobody took it yet: its holder stands down (and may take
# it again, under a new epoch)
_RENEW = """UPDATE leadership SET expires_at = now() + make_interval(secs => $3)
            WHERE epoch = $1 AND holder = $2 AND expires_at > now() RETURNING epoch"""
_GIVE_UP = "UPDATE leadership SET expires_at = '-infinity' WHERE epoch = $1 AND holder = $2"
# on a connection of the engine: does its term's lease still hold? (true on one outside a term)
STILL_LEADING = f"""
SELECT coalesce(current_setting('{EPOCH_SETTING}', true), '') = ''
    OR EXISTS (SELECT 1 FROM leadership WHERE expires_at > now()
               AND epoch = nullif(current_setting('{EPOCH_SETTING}', true), '')::bigint)"""


async def fenced_pool(postgres_url: str, schema: str, epoch: int, *, max_size: int) -> asyncpg.Pool:
    """A pool for a term of leadership: every connection carries the term's fencing token, so each write
    made on it is refused once another replica has taken over."""
    return await create_pool(_with_setting(postgres_url, EPOCH_SETTING, str(epoch)), schema, max_size=max_size)


def _with_setting(url: str, name: str, value: str) -> str:
    """The URL with a server setting every connection made from it carries."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != name] + [(name, value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def lock_key(schema: str) -> int:
    return advisory_lock_key("scheduler-leader", schema)


class LeaseLost(Exception):
    """Another replica holds the lease now."""


class Leadership:
    def __init__(self, postgres_url: str, schema: str, *, lead: Callable[[int], Awaitable[None]],
                 on_wake: Callable[..., None], wakeups: Wakeups, grace_seconds: float = 30.0,
                 retry_seconds: float = 2.0, check_seconds: float = 5.0) -> None:
        self._connect = lambda: asyncpg.connect(postgres_url, server_settings={"search_path": f'"{schema}"'})
        # on a connection of its own, outside the pool: the lock lives exactly as long as it
        self._listening = Listening(WAKE_CHANNEL, wakeups, connect=self._connect, release=_close,
                                    lock_key=lock_key(schema), on_wake=on_wake)
        self._lead = lead
        self.grace = grace_seconds
        self._retry = retry_seconds
        self._check = min(check_seconds, grace_seconds / 3)  # several tries to renew within the grace
        self.instance = f"{uuid.uuid4().hex[:12]}"  # this process: a restarted one is another holder
        self.epoch: int | None = None
        self.leading = False

    async def run(self) -> None:
        while True:
            try:
                if await self._listening.hold():
                    # before the request: PostgreSQL's lease starts later than this, never earlier
                    sent = time.monotonic()
                    epoch = await self._listening.conn.fetchval(_TAKE, self.instance, self.grace)
                    if epoch is not None:
                        await self._hold(epoch, expires=sent + self.grace)
                    else:  # another replica's lease runs on: leave the lock (and the wake-ups) to it
                        await self._listening.drop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: try again
                log.warning("leader election: %s", exc)
                await self._listening.drop()
            finally:
                self.leading = False
            await asyncio.sleep(self._retry)

    async def _hold(self, epoch: int, *, expires: float) -> None:
        """Lead until the engine ends, the lease is lost, or it is about to run out unrenewed. `expires` is
        this replica's view of the lease's end (monotonic), never later than PostgreSQL's."""
        log.info("this replica leads the scheduler (epoch %d)", epoch)
        self.epoch, self.leading = epoch, True
        engine = asyncio.create_task(self._lead(epoch), name="scheduler-engine")
        clean = False
        try:
            while not engine.done():
                # one check interval before the lease's end the engine is stopped: standing down takes a
                # moment, and a standby may take the lease the instant it runs out
                left = expires - time.monotonic()
                if left <= self._check:
                    log.warning("the scheduler's lease (epoch %d) runs out unrenewed: standing down", epoch)
                    return
                done, _ = await asyncio.wait({engine}, timeout=min(self._check, left - self._check))
                if done:
                    break
                sent = time.monotonic()
                left = expires - sent
                if left <= self._check:
                    continue
                try:
                    await within(self._renew(epoch), min(self._check, left - self._check))
                    expires = sent + self.grace
                except LeaseLost:
                    log.warning("another replica took the scheduler's lease (after epoch %d): standing down", epoch)
                    return
                except Exception as exc:
                    await self._listening.drop()
                    left = expires - time.monotonic()
                    log.warning("cannot renew the scheduler's lease (%s): leading on, %.0fs of grace left",
                                exc or type(exc).__name__, left - self._check)
            engine.result()  # surfaces the engine's error
        except asyncio.CancelledError:
            clean = True  # this process is stopping: hand the lease on at once
            raise
        except Exception:
            log.exception("the scheduler engine stopped; leadership is given up")
            clean = True
        finally:
            self.leading = False
            await cancel_all([engine], insist_after=60)  # its stand-down leaves the runs going
            if clean:
                await self._give_up(epoch)
            await self._listening.drop()
            log.info("this replica no longer leads the scheduler (epoch %d)", epoch)

    async def _renew(self, epoch: int) -> None:
        if not self._listening.held:
            await self._listening.hold()  # False while a standby tries the lock: renew without it
        if self._listening.held:
            renewed = await self._listening.conn.fetchval(_RENEW, epoch, self.instance, self.grace)
        else:
            conn = await self._connect()
            try:
                renewed = await conn.fetchval(_RENEW, epoch, self.instance, self.grace)
            finally:
                await _close(conn)
        if renewed is None:
            raise LeaseLost()

    async def _give_up(self, epoch: int) -> None:
        """Let a standby take over without waiting for the lease to run out (best effort)."""
        try:
            conn = await within(self._connect(), 5)
            try:
                await within(conn.execute(_GIVE_UP, epoch, self.instance), 5)
            finally:
                await _close(conn)
        except Exception as exc:
            log.debug("cannot hand the scheduler's lease on: %s", exc)


async def _close(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await within(conn.close(), 5)
    except Exception:
        conn.terminate()
