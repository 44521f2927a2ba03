"""The listening helper (services/kit/listening.py) on a stand-in connection: what it LISTENs on, when
this process's own commits wake it without a NOTIFY, the lock, and giving the connection back."""
from __future__ import annotations

import asyncio

import pytest

from services.kit.listening import Backoff, Listening
from services.kit.wakeups import Wakeups

CHANNEL = "probe_listening"


class FakeConnection:
    def __init__(self, *, lock_free: bool = True) -> None:
        self.lock_free = lock_free
        self.listeners: dict[str, list] = {}
        self.locked: list[int] = []
        self.closed = False

    async def fetchval(self, query: str, key: int) -> bool:
        assert "pg_try_advisory_lock" in query
        if self.lock_free:
            self.locked.append(key)
        return self.lock_free

    async def add_listener(self, channel: str, callback) -> None:
        self.listeners.setdefault(channel, []).append(callback)

    async def remove_listener(self, channel: str, callback) -> None:
        self.listeners[channel].remove(callback)

    def is_closed(self) -> bool:
        return self.closed

    def notify(self, channel: str) -> None:
        """A NOTIFY from another process's commit, as asyncpg delivers it."""
        for callback in list(self.listeners.get(channel, [])):
            callback(self, 4242, channel, "")


class FakeSource:
    """Gives out connections and counts what it is given back."""

    def __init__(self, *, lock_free: bool = True) -> None:
        self.lock_free = lock_free
        self.given: list[FakeConnection] = []
        self.released: list[FakeConnection] = []

    async def connect(self) -> FakeConnection:
        conn = FakeConnection(lock_free=self.lock_free)
        self.given.append(conn)
        return conn

    async def release(self, conn: FakeConnection) -> None:
        self.released.append(conn)


def listening_on(source: FakeSource, wakeups: Wakeups, **options) -> Listening:
    return Listening(CHANNEL, wakeups, connect=source.connect, release=source.release, **options)


async def test_a_held_connection_listens_and_is_woken_by_a_notify_and_by_this_processs_commits():
    source, wakeups = FakeSource(), Wakeups(None, "probe")
    listening = listening_on(source, wakeups)
    assert await listening.hold()
    assert listening.held and listening.conn is source.given[0]
    assert len(source.given[0].listeners[CHANNEL]) == 1

    assert not await listening.wait(0.01)
    source.given[0].notify(CHANNEL)
    assert await listening.wait(5)

    listening.clear()
    wakeups.wake(CHANNEL)  # a commit of this process: no NOTIFY needed
    assert await listening.wait(5)
    assert await listening.hold() and len(source.given) == 1, "a held connection is kept, not taken again"


async def test_a_wake_arriving_while_the_loop_looks_for_work_is_kept_for_its_next_wait():
    listening = listening_on(FakeSource(), Wakeups(None, "probe"))
    await listening.hold()
    listening.clear()  # before looking
    listening.wake()  # a commit while it looks
    assert await listening.wait(0)


async def test_a_wait_ends_as_soon_as_it_is_woken():
    listening = listening_on(FakeSource(), Wakeups(None, "probe"))
    await listening.hold()
    loop = asyncio.get_running_loop()
    started = loop.time()
    loop.call_later(0.05, listening.wake)
    assert await listening.wait(30)
    assert loop.time() - started < 5


async def test_dropping_gives_the_connection_back_and_this_processs_commits_no_longer_wake_it():
    source, wakeups = FakeSource(), Wakeups(None, "probe")
    listening = listening_on(source, wakeups)
    await listening.hold()
    await listening.drop()
    assert source.released == source.given and not listening.held
    assert source.given[0].listeners[CHANNEL] == []
    wakeups.wake(CHANNEL)
    assert not await listening.wait(0.01)

    assert await listening.hold()  # after a failure: a new connection
    assert len(source.given) == 2
    await listening.drop()
    await listening.drop()  # twice (a failure, then the shutdown) is harmless
    assert source.released == source.given


async def test_with_a_lock_held_elsewhere_it_gives_the_connection_back_and_leaves_this_processs_wakes_to_others():
    source, wakeups = FakeSource(lock_free=False), Wakeups(None, "probe")
    listening = listening_on(source, wakeups, lock_key=7)
    assert not await listening.hold()
    assert source.released == source.given and not listening.held
    assert source.given[0].listeners == {}
    wakeups.wake(CHANNEL)  # not taken here: the holder in another process is sent a NOTIFY
    assert not await listening.wait(0.01)

    source.lock_free = True  # the holder went away
    assert await listening.hold()
    assert source.given[1].locked == [7]


async def test_what_on_wake_returns_tells_this_processs_committers_whether_the_work_is_taken():
    free_slot = True
    calls = []

    def takes_work() -> bool:
        calls.append("woken")
        return free_slot

    listening = listening_on(FakeSource(), Wakeups(None, "probe"), on_wake=takes_work)
    await listening.hold()
    assert listening.wake() is True
    free_slot = False
    assert listening.wake() is False
    listening.conn.notify(CHANNEL)
    assert calls == ["woken"] * 3


async def test_prepare_runs_on_a_new_connection_and_one_that_fails_to_prepare_is_given_back():
    prepared = []

    async def prepare(conn) -> None:
        prepared.append(conn)
        if len(prepared) == 1:
            raise ConnectionError("the database went away")

    source = FakeSource()
    listening = listening_on(source, Wakeups(None, "probe"), prepare=prepare)
    with pytest.raises(ConnectionError):
        await listening.hold()
    assert source.released == source.given[:1] and not listening.held
    assert await listening.hold()
    await listening.hold()
    assert prepared == source.given


async def test_a_failing_release_is_not_raised():
    async def broken(_conn) -> None:
        raise ConnectionError("reset failed")

    source = FakeSource()
    listening = Listening(CHANNEL, Wakeups(None, "probe"), connect=source.connect, release=broken)
    await listening.hold()
    await listening.drop()
    assert not listening.held


async def test_backoff_doubles_up_to_its_cap_and_starts_again_after_a_success():
    backoff = Backoff(0.001, 0.004)
    waited = []
    for _ in range(5):
        waited.append(backoff.delay)
        await backoff.sleep()
    backoff.reset()
    waited.append(backoff.delay)
    assert waited == [0.001, 0.002, 0.004, 0.004, 0.004, 0.001]
