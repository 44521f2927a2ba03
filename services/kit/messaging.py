"""The event bus: topology, typed idempotent consumers with retries and a DLQ, and the publisher.

Every service declares the WHOLE topology at start (all queues and bindings, idempotently), so an
event published before its consumer first started is still waiting in that consumer's queue.
A handler runs inside one PostgreSQL transaction that also records the event in the inbox: the state
change, the inbox row and any outbox rows commit together, and a re-delivered event is skipped. Events
delivered together share that transaction (`_Batches`); one that fails sends each back to its own.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitMessage, RabbitQueue
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from pydantic import ValidationError

from contracts.events import Event, UnknownEvent, parse_event
from contracts.topology import (DEAD_LETTER_EXCHANGE, EXCHANGE, LOCAL_USER, OUTSIDE, OUTSIDE_EVENTS, PUBLISHES,
                                 SUBSCRIPTIONS, dead_letter_queue, queue_name)
from services.kit import inbox, metrics
from services.kit.inbox import LockKey
from services.kit.pacing import Floor
from services.kit.telemetry import WORKLOAD_ATTRIBUTE, correlation_id, extract_context, inject_headers

log = logging.getLogger(__name__)
REASON_HEADER = "x-avatar-dlq-reason"
USER_HEADER = "x-avatar-user-id"  # on a dead letter: the validated user that published it ("" when none)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ConnectionError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
    asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.CannotConnectNowError, asyncpg.InterfaceError,
    # a connection the server terminated, used between its FATAL message and the close: nothing was sent
    asyncpg.exceptions.InternalClientError,
)


class PermanentError(Exception):
    """The event can never be processed (e.g. it refers to something that cannot exist): dead-letter it."""


@dataclass
class HandlerContext:
    """What a consumer hands its handler: the transaction holding the event's inbox claim, and the event.
    A handler's unit of work joins that transaction (services/kit/messagebus.py)."""

    conn: asyncpg.Connection
    event: Event


Handler = Callable[[Event, HandlerContext], Awaitable[None]]
# the same work for several events delivered together, in one go (each context's event, in delivery order)
BatchHandler = Callable[[Sequence[HandlerContext]], Awaitable[None]]

EVENTS_EXCHANGE = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, durable=True)
DLX_EXCHANGE = RabbitExchange(DEAD_LETTER_EXCHANGE, type=ExchangeType.DIRECT, durable=True)


def new_broker(url: str, service: str, **options: Any) -> RabbitBroker:
    """The RabbitMQ connection an EventBus needs. apply_types=False: the bus takes each message as it is
    (`_as_message`); FastDepends' injection of a RabbitMessage argument cost a worker-thread hop per delivery."""
    return RabbitBroker(url, log_level=logging.DEBUG, app_id=f"avatar-{service}", apply_types=False, **options)


def broker_user(url: str) -> str:
    """The RabbitMQ user a broker URL connects as (AMQP's default when the URL names none)."""
    return urlsplit(url).username or LOCAL_USER


@dataclass(frozen=True)
class Publishers:
    """Whom a consumer believes (contracts.topology): RabbitMQ validates a message's `user_id` against the
    publishing connection's user, and the event's `producer` must be what that user may publish as.

    `prefix` is the naming the platform's broker users share (`avatar-`, or a test run's own); `local`
    (AVATAR_ENV=local) believes `guest`, or no user_id at all, as any producer: there guest/guest is the
    one user, with every permission, so refusing it would guard nothing."""

    prefix: str
    local: bool

    def refusal(self, event: Event, routing_key: str, user_id: str | None) -> str | None:
        """Why the event must not be believed; None when it may."""
        if routing_key and routing_key != event.type:
            return f"routing key {routing_key!r} is not the event's type {event.type!r}"
        if not user_id or user_id == LOCAL_USER:
            if self.local:
                return None
            return (f"user {LOCAL_USER} is believed only with AVATAR_ENV=local" if user_id
                    else "no user_id: the publisher is unknown (set the AMQP user_id property)")
        name = user_id.removeprefix(self.prefix) if user_id.startswith(self.prefix) else None
        if name in PUBLISHES:
            producer, events = name, PUBLISHES[name]
        elif name is not None and name.startswith(OUTSIDE) and name.removeprefix(OUTSIDE) not in SUBSCRIPTIONS:
            producer, events = name.removeprefix(OUTSIDE), OUTSIDE_EVENTS
        else:
            return f"user {user_id} is not a publisher the platform knows"
        if event.producer != producer:
            return f"producer {event.producer!r} is forged: user {user_id} publishes as {producer!r}"
        if event.type not in events:
            return (f"user {user_id} may publish only {', '.join(events)}, not {event.type}"
                    + ("" if producer in PUBLISHES else " (it is outside the platform)"))
        return None


def service_queue(service: str) -> RabbitQueue:
    return RabbitQueue(
        queue_name(service), durable=True, routing_key=SUBSCRIPTIONS[service][0],
        arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE, "x-dead-letter-routing-key": service},
    )


async def _as_message(message: RabbitMessage) -> RabbitMessage:
    """The handler gets the message itself (the broker runs without FastDepends) and leaves decoding to
    `parse_event`: FastStream's own JSON decoding of a body that claims to be JSON but is not would fail
    before `_on_message` runs, leaving the message unacked instead of dead-lettered."""
    return message


def _trace_headers() -> dict | None:
    """The current (consumer) span's context, to remember with the claim; None when nothing is traced."""
    carrier = inject_headers()
    return carrier if "traceparent" in carrier else None


async def claim(conn: asyncpg.Connection, event: Event, lock: tuple[str, str] | None = None) -> bool:
    """Claim the event in the caller's transaction (see services.kit.inbox), remembering the current span."""
    return await inbox.claim(conn, event, _trace_headers(), lock)


@dataclass
class _Delivery:
    """A delivered event waiting for a batch: what its handler needs, and the context it runs in
    (its consumer span current, its correlation id set)."""

    claim: inbox.Claim
    handler: Handler
    context: contextvars.Context
    outcome: asyncio.Future


class _Batches:
    """Deliveries handled together: one transaction, one claim statement for all of them, then each
    handler in turn, in delivery order. Under load a service's queue holds many events and the per-event
    BEGIN, claim and COMMIT round trips would be most of what handling one costs.

    A worker starts a partial batch at most every `min_interval` seconds: under load the events delivered
    while it waits join its next batch (one transaction for many, instead of one each as they trickle in);
    a full batch waiting starts at once (the floor gathers, it never caps a busy service's rate), and a
    worker idle for longer takes a lone event at once, so a quiet service adds no delay. A batch
    of one, or a batch whose transaction fails for any reason (a handler's error, a deadlock, the
    database away), is handed back: each of its events is then handled on its own, with the retries and
    the dead-lettering of a single event, so a bad event never takes its neighbours with it."""

    def __init__(self, bus: "EventBus", *, size: int, workers: int, min_interval: float = 0.0) -> None:
        self._bus = bus
        self._size = size
        self._workers = workers
        self._min_interval = min_interval
        self._waiting: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._full = asyncio.Event()  # a whole batch is waiting
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"{self._bus.service}-batches-{i}")
                       for i in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self._waiting.empty():  # handed back: handled on their own (or left unacked)
            _resolve(self._waiting.get_nowait(), None)

    async def handle(self, event: Event, handler: Handler, lock: tuple[str, str] | None) -> str | None:
        """The event's outcome when handled in a batch; None when it must be handled on its own."""
        if not any(not task.done() for task in self._tasks):  # stopped (or never started)
            return None
        delivery = _Delivery(inbox.Claim(event, _trace_headers(), lock), handler, contextvars.copy_context(),
                             asyncio.get_running_loop().create_future())
        self._waiting.put_nowait(delivery)
        if self._waiting.qsize() >= self._size - 1:  # with the one a waiting worker holds
            self._full.set()
        return await delivery.outcome

    async def _work(self) -> None:
        floor = Floor(self._min_interval)
        while True:
            batch = [await self._waiting.get()]
            try:
                self._full.clear()
                # the other messages of the same read (at least) are delivered meanwhile; a batch already
                # full, or filling up meanwhile, starts then
                await floor.wait(self._full, ready=self._waiting.qsize() + 1 >= self._size)
                while len(batch) < self._size and not self._waiting.empty():
                    batch.append(self._waiting.get_nowait())
                outcomes = [None] if len(batch) == 1 else await self._handle_or_hand_back(batch)
            except BaseException:  # this worker is stopped: each of its batch is handled on its own
                for delivery in batch:
                    _resolve(delivery, None)
                raise
            for delivery, outcome in zip(batch, outcomes):
                _resolve(delivery, outcome)

    async def _handle_or_hand_back(self, batch: list[_Delivery]) -> list[str | None]:
        try:
            return await self._handle(batch)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]  # the worker is stopped
                raise
            error = "a handler was cancelled"  # a handler's own doing: it must not end the worker
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        log.info("a batch of %d %s events rolled back (%s); each is handled on its own",
                 len(batch), self._bus.service, error)
        metrics.BATCHES.labels(self._bus.service, "rolled_back").inc()
        return [None] * len(batch)

    async def _handle(self, batch: list[_Delivery]) -> list[str]:
        outcomes: list[str] = []
        with metrics.counted_on_commit():
            counts = metrics.open_block()
            async with self._bus.pool.acquire() as conn:
                async with conn.transaction():
                    # the claim serves many traces: a span of its own, linked to each event's consumer span
                    with self._span("claim batch", batch):
                        claimed = await inbox.claim_many(conn, [d.claim for d in batch])
                    handled: list[_Delivery] = []
                    for delivery in batch:
                        event_id = delivery.claim.event.event_id
                        if event_id in claimed:
                            claimed.discard(event_id)  # delivered twice in this batch: handled once
                            handled.append(delivery)
                            outcomes.append("handled")
                        else:
                            outcomes.append("duplicate")
                    together_done: set[BatchHandler] = set()
                    for delivery in handled:
                        together = self._bus.batch_handler(delivery.claim.event.type)
                        if together is None:
                            await self._handle_one(conn, delivery, counts)
                        elif together not in together_done:  # all of its events, where the first of them is
                            together_done.add(together)
                            group = [d for d in handled if self._bus.batch_handler(d.claim.event.type) is together]
                            if len(group) == 1:
                                await self._handle_one(conn, delivery, counts)
                            else:
                                await self._handle_together(conn, together, group)
        metrics.BATCHES.labels(self._bus.service, "committed").inc()
        metrics.BATCHED_EVENTS.labels(self._bus.service).inc(len(batch))
        return outcomes

    def _span(self, name: str, deliveries: list[_Delivery]) -> contextlib.AbstractContextManager[trace.Span]:
        """A current span serving many traces: linked to the consumer span of each delivery."""
        links = [Link(d.context.run(trace.get_current_span).get_span_context()) for d in deliveries]
        return self._bus.tracer.start_as_current_span(
            name, kind=SpanKind.INTERNAL, links=links,
            attributes={"avatar.batch_size": len(deliveries), "messaging.batch.message_count": len(deliveries)})

    async def _handle_one(self, conn: asyncpg.Connection, delivery: _Delivery, counts: Any) -> None:
        # in the delivery's own context: its span parents the handler's statements and what it
        # publishes; what it counts lands when this batch commits
        delivery.context.run(metrics.count_into, counts)
        event = delivery.claim.event
        await asyncio.create_task(delivery.handler(event, HandlerContext(conn, event)),
                                  context=delivery.context)

    async def _handle_together(self, conn: asyncpg.Connection, together: BatchHandler, group: list[_Delivery]) -> None:
        # one span for the group's statements, linked to each event's consumer span (as the claim is);
        # this worker's context is inside the batch's counted_on_commit block
        with self._span("handle batch", group):
            await together([HandlerContext(conn, d.claim.event) for d in group])


def _resolve(delivery: _Delivery, outcome: str | None) -> None:
    if not delivery.outcome.done():  # its message's task may have been cancelled (shutdown)
        delivery.outcome.set_result(outcome)


class EventBus:
    def __init__(self, broker: RabbitBroker, service: str, pool: asyncpg.Pool, *,
                 max_attempts: int = 5, backoff_cap: float = 5.0, broker_url: str | None = None,
                 prefetch: int | None = None, batch_size: int = 1, batch_workers: int = 2,
                 batch_min_interval: float = 0.0, consume: bool = True, local: bool = False) -> None:
        self.broker = broker
        self.service = service
        # the user this process connects as, set as the user_id of all it publishes, and the naming of
        # the platform's users it shares (`<prefix><service>`)
        self.user = broker_user(broker_url or str(broker._connection_kwargs.get("url", "")))
        if self.user == LOCAL_USER and not local:
            raise ValueError(f"the broker user {LOCAL_USER} is for AVATAR_ENV=local only: connect {service} as "
                             f"its own user (avatar-{service}, deploy/README.md)")
        if self.user != LOCAL_USER and not self.user.endswith(service):
            raise ValueError(f"{service} connects as broker user {self.user!r}: its user is named <prefix>{service}")
        self.publishers = Publishers(self.user.removesuffix(service) if self.user != LOCAL_USER else "avatar-", local)
        self.pool = pool
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap
        self._handlers: dict[str, Handler] = {}
        self._locks: dict[str, LockKey] = {}
        self._together: dict[str, BatchHandler] = {}
        self.tracer = trace.get_tracer("avatar.messaging")
        self._server: dict[str, Any] = {"messaging.system": "rabbitmq"}
        parts = urlsplit(broker_url) if broker_url else None
        if parts is not None and parts.hostname:  # never the credentials
            self._server.update({"server.address": parts.hostname, "server.port": parts.port or 5672})
        self._stopping = False
        self._batches = (_Batches(self, size=batch_size, workers=batch_workers, min_interval=batch_min_interval)
                         if batch_size > 1 and consume else None)
        if not consume:  # a process that only answers requests (Settings.role "api"): it publishes, never consumes
            return
        # every delivered message is handled in a task of its own: the prefetch bounds how many at once
        # (None: unbounded, so a backlog would all be in memory and waiting for the pool at the same time)
        broker.subscriber(service_queue(service), EVENTS_EXCHANGE, ack_policy=AckPolicy.MANUAL,
                          channel=Channel(prefetch_count=prefetch) if prefetch else None,
                          decoder=_as_message)(self._on_message)

    def on(self, event_type: str, handler: Handler, *, lock: LockKey | None = None,
           together: BatchHandler | None = None) -> None:
        """Handle `event_type`; with `lock`, the handler's transaction holds the advisory lock
        lock(event) = (namespace, key) from its first statement (see `claim`).

        With `together`, the events of a batch registered with it (of any of its types) are handled by
        one call to it, where the first of them would have been handled, under a span of the batch linked
        to each event's consumer span; `handler` still handles an event on its own (a batch of one, a
        batch handed back, a retry)."""
        if event_type not in SUBSCRIPTIONS[self.service]:
            raise ValueError(f"{self.service} does not subscribe to {event_type}; add it to contracts.topology")
        self._handlers[event_type] = handler
        if lock is not None:
            self._locks[event_type] = lock
        if together is not None:
            self._together[event_type] = together

    def batch_handler(self, event_type: str) -> BatchHandler | None:
        return self._together.get(event_type)

    async def declare_topology(self) -> None:
        """As guest (local), every queue, so that events wait for a consumer that has not started yet; as
        its own user, only its own queues (all it may configure): the broker's definitions
        (deploy/rabbitmq) declare the whole topology before any service starts."""
        exchange = await self.broker.declare_exchange(EVENTS_EXCHANGE)
        dlx = await self.broker.declare_exchange(DLX_EXCHANGE)
        for service, keys in SUBSCRIPTIONS.items():
            if self.user != LOCAL_USER and service != self.service:
                continue
            queue = await self.broker.declare_queue(service_queue(service))
            for key in keys:
                await queue.bind(exchange, routing_key=key)
            dlq = await self.broker.declare_queue(RabbitQueue(dead_letter_queue(service), durable=True))
            await dlq.bind(dlx, routing_key=service)

    async def start(self) -> None:
        """Connect, declare the topology and begin consuming (call after handlers are registered)."""
        if self._batches is not None:
            self._batches.start()
        try:
            await self.broker.start()
            await self.declare_topology()
        except BaseException:
            if self._batches is not None:
                await self._batches.stop()
            raise

    async def stop(self) -> None:
        self._stopping = True
        await self.broker.stop()
        if self._batches is not None:
            await self._batches.stop()

    def _broker_attributes(self) -> dict[str, Any]:
        return self._server

    async def publish(self, routing_key: str, body: bytes, headers: dict[str, Any]) -> None:
        """Publish persistently with confirms; used by the outbox relay (it carries the stored trace context).

        A PRODUCER span `send avatar.events` (OpenTelemetry messaging conventions: operation, then the
        destination, which for RabbitMQ is the exchange) parented on the context stored with the row."""
        from opentelemetry import context as otel_context

        token = otel_context.attach(extract_context(headers))
        try:
            with self.tracer.start_as_current_span(
                f"send {EXCHANGE}", kind=SpanKind.PRODUCER,
                attributes={**self._broker_attributes(), "messaging.operation.type": "send",
                            "messaging.operation.name": "send", "messaging.destination.name": EXCHANGE,
                            "messaging.rabbitmq.destination.routing_key": routing_key,
                            "messaging.message.body.size": len(body)},
            ):
                await self.broker.publish(body, exchange=EVENTS_EXCHANGE, routing_key=routing_key, persist=True,
                                          mandatory=False, headers=inject_headers(headers),
                                          content_type="application/json", user_id=self.user)
        finally:
            otel_context.detach(token)

    async def dlq_depth(self) -> int:
        queue = await self.broker.declare_queue(RabbitQueue(dead_letter_queue(self.service), durable=True))
        # the broker caches the declared queue (and its first declaration's count): declare it again
        return (await queue.declare(timeout=5)).message_count

    async def _dead_letter(self, message: RabbitMessage, reason: str) -> None:
        headers = dict(message.headers or {})
        headers.update({REASON_HEADER: reason[:1000], "x-avatar-service": self.service,
                        "x-avatar-original-routing-key": message.raw_message.routing_key or "",
                        USER_HEADER: message.raw_message.user_id or ""})
        with self.tracer.start_as_current_span(
            f"send {DEAD_LETTER_EXCHANGE}", kind=SpanKind.PRODUCER,
            attributes={**self._broker_attributes(), "messaging.operation.type": "send",
                        "messaging.operation.name": "send", "messaging.destination.name": DEAD_LETTER_EXCHANGE,
                        "messaging.rabbitmq.destination.routing_key": self.service,
                        "avatar.dlq_reason": reason[:300]},
        ):
            await self.broker.publish(message.body, exchange=DLX_EXCHANGE, routing_key=self.service, persist=True,
                                      mandatory=False, headers=headers, content_type=message.content_type,
                                      user_id=self.user)
        metrics.DEAD_LETTERED.labels(self.service).inc()
        log.warning("dead-lettered a message on %s: %s", self.service, reason)

    async def _on_message(self, message: RabbitMessage) -> None:
        try:
            event = parse_event(message.body)
        except (ValueError, ValidationError, UnknownEvent) as exc:
            await self._dead_letter(message, f"invalid event: {exc}")
            await message.ack()
            metrics.EVENTS_CONSUMED.labels(self.service, "invalid", "dead_lettered").inc()
            return
        refusal = self.publishers.refusal(event, message.raw_message.routing_key or "", message.raw_message.user_id)
        if refusal is not None:
            await self._dead_letter(message, f"untrusted event: {refusal}")
            await message.ack()
            metrics.EVENTS_REFUSED.labels(self.service, event.type).inc()
            metrics.EVENTS_CONSUMED.labels(self.service, event.type, "refused").inc()
            return
        handler = self._handlers.get(event.type)
        if handler is None:
            await self._dead_letter(message, f"{self.service} has no handler for {event.type}")
            await message.ack()
            return
        parent = extract_context(message.headers)
        token = correlation_id.set(event.correlation_id)
        try:
            # OpenTelemetry messaging conventions: `process <destination>`, the destination being the
            # exchange for RabbitMQ; the service's queue is the subscription its replicas share
            attributes = {**self._broker_attributes(), "messaging.operation.type": "process",
                          "messaging.operation.name": "process", "messaging.destination.name": EXCHANGE,
                          "messaging.rabbitmq.destination.routing_key": message.raw_message.routing_key or event.type,
                          "messaging.destination.subscription.name": queue_name(self.service),
                          "messaging.consumer.group.name": queue_name(self.service),
                          "messaging.message.id": str(event.event_id),
                          "messaging.message.conversation_id": event.correlation_id,
                          "messaging.message.body.size": len(message.body or b""),
                          "avatar.event.type": event.type, WORKLOAD_ATTRIBUTE: event.correlation_id}
            delivery_tag = getattr(message.raw_message, "delivery_tag", None)
            if isinstance(delivery_tag, int):
                attributes["messaging.rabbitmq.message.delivery_tag"] = delivery_tag
            with self.tracer.start_as_current_span(
                f"process {EXCHANGE}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
            ) as span:
                outcome = await self._handle(event, handler, message)
                if outcome == "dead_lettered":
                    span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
                metrics.EVENTS_CONSUMED.labels(self.service, event.type, outcome).inc()
            await message.ack()
        finally:
            correlation_id.reset(token)

    async def _handle(self, event: Event, handler: Handler, message: RabbitMessage) -> str:
        lock_key = self._locks.get(event.type)
        try:
            lock = lock_key(event) if lock_key else None
        except Exception as exc:  # the event lacks what its lock is keyed on: it can never be handled
            await self._dead_letter(message, f"{event.type} {event.event_id}: no lock key: {exc!r}")
            return "dead_lettered"
        if self._batches is not None:
            outcome = await self._batches.handle(event, handler, lock)
            if outcome is not None:
                return outcome
        return await self._handle_with_retries(event, handler, message, lock)

    async def _handle_with_retries(self, event: Event, handler: Handler, message: RabbitMessage,
                                   lock: tuple[str, str] | None) -> str:
        attempt = 0
        while True:
            attempt += 1
            try:
                # what the handler counts is counted once it commits: a retried attempt counts once
                with metrics.counted_on_commit():
                    async with self.pool.acquire() as conn:
                        async with conn.transaction():
                            if not await claim(conn, event, lock):
                                return "duplicate"
                            await handler(event, HandlerContext(conn, event))
                return "handled"
            except PermanentError as exc:
                await self._dead_letter(message, f"{event.type} {event.event_id}: {exc}")
                return "dead_lettered"
            except TRANSIENT_ERRORS as exc:
                # infrastructure away: keep the message and wait for it to come back
                if self._stopping:
                    raise
                metrics.CONSUMER_RETRIES.labels(self.service).inc()
                trace.get_current_span().add_event("retry", {"attempt": attempt, "error.type": type(exc).__name__})
                log.warning("transient error handling %s (attempt %d): %s", event.type, attempt, exc)
            except (Exception, asyncio.CancelledError) as exc:  # a bug or a rule violation: retry, then dead-letter
                if isinstance(exc, asyncio.CancelledError) and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # this consumer is being stopped; a handler's own CancelledError is a failure like
                    # any other (let through, it left the message unacknowledged and its queue stuck behind it)
                log.exception("error handling %s %s (attempt %d)", event.type, event.event_id, attempt)
                if attempt >= self.max_attempts:
                    await self._dead_letter(
                        message, f"{event.type} {event.event_id}: gave up after {attempt} attempts: {exc!r}")
                    return "dead_lettered"
                metrics.CONSUMER_RETRIES.labels(self.service).inc()  # counted only when it is retried
                trace.get_current_span().add_event("retry", {"attempt": attempt, "error.type": type(exc).__name__})
            await asyncio.sleep(min(self.backoff_cap, 0.1 * 2 ** attempt))
