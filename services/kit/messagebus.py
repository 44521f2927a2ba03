"""The message bus: commands and events mapped to a service's small handler functions.

HTTP routes, broker consumers and background sweeps all come here: a route parses its input into a
command and answers with what `bus.handle(command)` returns; a consumer's event is handed to
`bus.handle_event` inside the consumer's transaction. Each handler gets a fresh unit of work and the
dependencies it names (cosmicpython's bootstrap: by parameter name), so a test gives it fakes.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Awaitable, Callable, Mapping

import asyncpg

from contracts.events import Event
from services.kit.inbox import LockKey
from services.kit.messaging import EventBus
from services.kit.unit_of_work import UnitOfWork


class Command:
    """An imperative request to change state (`ApproveRequest`, `CancelWorkload`): one handler each.
    Subclasses are frozen dataclasses."""


CommandHandler = Callable[..., Awaitable[Any]]
EventHandler = Callable[..., Awaitable[None]]
# the same work for several events of one delivered batch, in one go: (events, unit of work)
BatchEventHandler = Callable[..., Awaitable[None]]


def inject(handler: Callable[..., Any], dependencies: Mapping[str, Any]) -> Callable[..., Any]:
    """The handler with the dependencies its signature names bound (the message and the unit of work
    stay its first two parameters)."""
    wanted = {name: dependencies[name] for name in inspect.signature(handler).parameters if name in dependencies}
    return functools.partial(handler, **wanted) if wanted else handler


class MessageBus:
    def __init__(self, uow: Callable[..., UnitOfWork], *, commands: Mapping[type, CommandHandler] | None = None,
                 events: Mapping[str, EventHandler] | None = None, locks: Mapping[str, LockKey] | None = None,
                 together: Mapping[str, BatchEventHandler] | None = None, dependencies: Mapping[str, Any] | None = None) -> None:
        dependencies = dict(dependencies or {})
        self._uow = uow
        self._commands = {kind: inject(handler, dependencies) for kind, handler in (commands or {}).items()}
        self._events = {kind: inject(handler, dependencies) for kind, handler in (events or {}).items()}
        self._locks = dict(locks or {})
        # one bound callable per distinct batch handler: the consumer groups a batch's events by identity
        bound: dict[Any, Callable[[Any], Awaitable[None]]] = {}
        self._together = {}
        for kind, handler in (together or {}).items():
            if handler not in bound:
                bound[handler] = self._batch_consumer(inject(handler, dependencies))
            self._together[kind] = bound[handler]

    async def handle(self, command: Command) -> Any:
        """Run the command's handler in a unit of work of its own; returns what the handler returns."""
        try:
            handler = self._commands[type(command)]
        except KeyError:
            raise LookupError(f"no handler for the command {type(command).__name__}") from None
        return await handler(command, self._uow())

    async def handle_event(self, event: Event, conn: asyncpg.Connection | None = None) -> None:
        """Run the event's handler; with `conn`, inside that (the consumer's) transaction."""
        handler = self._events.get(event.type)
        if handler is None:
            raise LookupError(f"no handler for the event {event.type}")
        await handler(event, self._uow(conn=conn, cause=event))

    @property
    def event_types(self) -> list[str]:
        return list(self._events)

    def subscribe(self, broker: EventBus) -> None:
        """Consume every event this bus handles from the service's queue, each in the consumer's
        transaction (with its inbox claim, and the per-workload lock where one is named)."""
        for event_type in self._events:
            broker.on(event_type, self._consume, lock=self._locks.get(event_type),
                      together=self._together.get(event_type))

    async def _consume(self, event: Event, ctx: Any) -> None:
        await self.handle_event(event, ctx.conn)

    def _batch_consumer(self, handler: BatchEventHandler) -> Callable[[Any], Awaitable[None]]:
        async def consume(contexts: Any) -> None:
            await handler([ctx.event for ctx in contexts], self._uow(conn=contexts[0].conn))
        return consume
