"""A unit of work without servers, for the handler tier (tests/unit/<service>/test_handlers.py).

A service's fake subclasses `FakeUnitOfWork` and gives it in-memory repositories over a `state` object
(the service's tables as attributes); the handlers under test cannot tell it from the real one. The
repositories write to the state at once; a unit that ends without committing puts it back as it was. What a committed unit published is in `published` (every unit
made by one `FakeUnitOfWorks` shares the list) but its audit records, which are in `audited`; what it counted
after commit ran its callbacks."""
from __future__ import annotations

import contextlib
import copy
from typing import Any, AsyncIterator, Callable

from contracts.events import Event
from contracts.topology import AUDIT
from services.kit.unit_of_work import AbstractUnitOfWork, Recorded


class FakeUnitOfWork(AbstractUnitOfWork):
    # state attributes a rollback leaves as they are (what a database sequence hands out stays handed out)
    not_rolled_back: tuple[str, ...] = ()

    def __init__(self, published: list[Recorded] | None = None, *, cause: Event | None = None,
                 state: Any = None) -> None:
        super().__init__()
        self.published = published if published is not None else []
        self.audited: list[Recorded] = []  # audit.recorded events (services/kit/audit.py), kept apart
        self.cause = cause
        self.state = state
        self.commits = 0
        self.woken: list[str] = []  # channels woken once a commit happened
        self._after: list[Callable[[], None]] = []
        self._before: dict[str, Any] | None = None

    async def __aenter__(self) -> "FakeUnitOfWork":
        self._reset()
        self._after = []
        if self.state is not None:
            self._before = {name: copy.deepcopy(value) for name, value in vars(self.state).items()
                            if name not in self.not_rolled_back}
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if not self.committed:
            self.rollback()

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator["FakeUnitOfWork"]:
        async with self:
            yield self

    def rollback(self) -> None:
        """The state as it was when the unit began."""
        if self._before is not None:
            vars(self.state).update(self._before)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after.append(callback)

    def wake(self, channel: str) -> None:
        self.after_commit(lambda: self.woken.append(channel))

    @contextlib.asynccontextmanager
    async def continue_trace(self, name: str, workload_id: str) -> AsyncIterator[None]:
        yield None

    async def commit(self) -> list[Recorded]:
        events = self.collect()
        self.published.extend(event for event in events if event.type != AUDIT)
        self.audited.extend(event for event in events if event.type == AUDIT)
        self.committed = True
        self.commits += 1
        for callback in self._after:
            callback()
        return events

    async def commit_guarded(self, change: Any) -> bool:
        """`change` is what the fake repository returned for its guarded write: a callable applying it
        (True when its guard held)."""
        if not change():
            self.collect()  # dropped with the change, as in one statement
            return False
        await self.commit()
        return True


class FakeUnitOfWorks:
    """The factory a MessageBus takes: each call a fresh unit over the same in-memory state."""

    def __init__(self, make: Callable[..., FakeUnitOfWork]) -> None:
        self._make = make
        self.published: list[Recorded] = []
        self.audited: list[Recorded] = []
        self.made: list[FakeUnitOfWork] = []

    def __call__(self, conn: Any = None, cause: Event | None = None) -> FakeUnitOfWork:
        uow = self._make(self.published, cause=cause)
        uow.audited = self.audited
        self.made.append(uow)
        return uow

    def woken(self) -> list[str]:
        return [channel for uow in self.made for channel in uow.woken]

    def types(self) -> list[str]:
        return [event.type for event in self.published]
