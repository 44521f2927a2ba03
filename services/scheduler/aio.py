"""Waiting and cancelling without losing a cancellation.

Python 3.11's `asyncio.wait_for` returns normally when the awaited thing finishes in the
same moment its caller is cancelled (the cancellation is lost), and `asyncio.gather` ends
as soon as ONE child is cancelled, leaving the others running. A scheduler loop that
survives its own shutdown keeps scheduling with a closed pool, so these helpers are used
instead wherever the engine waits.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """Like wait_for (TimeoutError when late, the work is cancelled), but a cancellation of
    the caller always propagates."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})
        raise asyncio.TimeoutError()
    return task.result()


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True when the event was set within the timeout."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
        return bool(done)
    finally:
        waiter.cancel()


async def cancel_all(tasks: Iterable[asyncio.Future[Any]], *, insist_after: float = 15.0) -> None:
    """Cancel and wait until every task has really ended. A task still running `insist_after`
    seconds later (its cleanup may legitimately take a while) is cancelled again."""
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=insist_after)
        for task in pending:
            task.cancel()


async def until_done(attempt: Callable[[], Awaitable[T]], *, what: str, retried: tuple[type[BaseException], ...],
                     first: float = 0.2, cap: float = 5.0, give_up_after: float | None = None) -> T:
    """Call `attempt` until it returns, pausing `first` seconds after a `retried` error, doubled up to `cap`:
    for a write that must not be dropped while a dependency is away (it is idempotent, so a try that
    failed after it applied is harmless). Any other error ends the retries; so does a `retried` one once
    `give_up_after` seconds have passed (it is raised)."""
    delay = first
    failures = 0
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    while True:
        try:
            return await attempt()
        except retried as exc:
            if deadline is not None and time.monotonic() + delay > deadline:
                raise
            failures += 1
            (log.warning if failures in (1, 10) or failures % 50 == 0 else log.debug)(
                "%s failed (%d times so far): %s; retrying in %.1fs", what, failures, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)
