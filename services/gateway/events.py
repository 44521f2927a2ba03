"""GET /api/events: the saga as Server-Sent Events for the console, resumable with Last-Event-ID.

The gateway's queue is shared by its replicas, so each event reaches ONE of them: that one appends the
event (only what visibility.py lets a caller see) to a Redis Stream, `<redis_prefix>gateway:events`,
capped near `events_stream_length`. Every gateway process runs one reader of that stream fanning out to
its connected clients, so every replica serves every event under the same id, and the stream id is the
SSE id: a client that reconnects anywhere with `Last-Event-ID` gets what it missed from the stream
(XRANGE), then live events, with nothing lost or repeated as long as its id is still in the window.

`event: reset` (data: {"reason", "message"}) tells the console something is off:
- "missed": its Last-Event-ID fell out of the window (trimmed); sent with the current id, then live
  events follow: the console reloads what it shows;
- "slow": it fell CLIENT_QUEUE messages behind; the stream closes, and a reconnect resumes;
- "unauthorized": its session or token no longer holds (rechecked every REVALIDATE_SECONDS); it closes.

The stream's order is the order the gateway appended events in, the same for every client; events of
one workload published close together may swap places (the consumer handles deliveries concurrently),
so the console orders a workload's events by `occurred_at`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import weakref
from typing import Annotated, Any, AsyncIterator, Awaitable, Callable, Sequence

import redis.exceptions
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from prometheus_client import Counter, Gauge

from contracts.events import Event
from contracts.topology import SUBSCRIPTIONS
from services.gateway import visibility
from services.gateway.identity import AnyCaller, Caller
from services.kit.messaging import HandlerContext

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

RETRY_MS = 3000           # the browser's reconnect delay (the `retry:` field)
CLIENT_QUEUE = 1000       # messages waiting for one client before it counts as too slow
REVALIDATE_SECONDS = 5.0  # how often an open stream resolves its caller again (deactivated, expired)
READ_COUNT = 500          # stream entries per XREAD / XRANGE page
READ_BLOCK_MS = 2000      # how long the reader's XREAD waits for new entries (under any socket timeout)
# how long an event's id is remembered after it was appended: a redelivery within this time (the gateway
# died between XADD and the ack, a retried transaction) is not appended twice; the event_id in every
# message lets the console drop a later one
DEDUPE_SECONDS = 900
_STREAM_ID = re.compile(r"\d{1,20}(-\d{1,20})?")

SSE_CLIENTS = Gauge("avatar_gateway_sse_clients", "Clients connected to GET /api/events in this process")
SSE_DELIVERED = Counter("avatar_gateway_sse_events_delivered_total",
                        "Event messages written to SSE clients (one per client per event, replays included)")
SSE_RESETS = Counter("avatar_gateway_sse_resets_total", "SSE clients sent `event: reset`: too slow (slow, then "
                     "closed), resuming from an id the stream no longer holds (missed), or no longer logged in "
                     "(unauthorized, then closed)", ["reason"])
SSE_REFUSED = Counter("avatar_gateway_sse_refused_total", "SSE connections refused: events_max_clients reached")
SSE_APPENDED = Counter("avatar_gateway_sse_appended_total", "Saga events offered to the live stream, by outcome "
                       "(appended, duplicate: already appended, hidden: no visibility rule)", ["outcome"])

# append once per event id: the SET NX and the XADD happen together or not at all
_APPEND = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 't', ARGV[3], 'c', ARGV[4], 'd', ARGV[5])
end
return false
"""

StreamKey = tuple[int, int]
Recheck = Callable[[], Awaitable[Caller]]
HEARTBEAT = b": heartbeat\n\n"


def stream_key(stream_id: bytes | str) -> StreamKey:
    """A stream id as a comparable pair (`1700000000000-3` -> (1700000000000, 3))."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def missed(after: StreamKey, info: dict[str, Any] | None) -> bool:
    """Whether a client that saw everything up to `after` may have missed entries the stream dropped
    (XINFO STREAM `info`; None: no stream). Trimming does not move `max-deleted-entry-id`, so an id before
    the first entry kept counts as missed once anything was ever trimmed. An id beyond the last one
    generated came from another life of the stream (Redis emptied)."""
    if info is None:
        return after != (0, 0)
    if after > stream_key(info["last-generated-id"]):
        return True
    if after < stream_key(info.get("max-deleted-entry-id") or b"0-0"):
        return True
    if info.get("entries-added", 0) > info.get("length", 0):  # something was trimmed
        first = info.get("first-entry")
        if first is None:  # all of it
            return after < stream_key(info["last-generated-id"])
        return after < stream_key(first[0])
    return False


def frame(stream_id: bytes, event_type: bytes, data: bytes) -> bytes:
    return b"id: " + stream_id + b"\nevent: " + event_type + b"\ndata: " + data + b"\n\n"


def reset_frame(reason: str, message: str, stream_id: bytes | None = None) -> bytes:
    data = json.dumps({"reason": reason, "message": message}, separators=(",", ":")).encode()
    return (b"id: " + stream_id + b"\n" if stream_id is not None else b"") + b"event: reset\ndata: " + data + b"\n\n"


class _Client:
    """One connected client: what it asked for and the messages waiting for it (bounded)."""

    __slots__ = ("filter", "pending", "wake", "slow", "ended", "due")

    def __init__(self, filter: visibility.Filter) -> None:
        self.filter = filter
        self.pending: list[tuple[StreamKey, bytes]] = []
        self.wake = asyncio.Event()
        self.slow = False
        self.ended = False
        self.due = float("inf")  # when it wants waking with nothing to send (a heartbeat or a recheck is due)

    def offer(self, key: StreamKey, message: bytes) -> None:
        if self.slow:
            return
        if len(self.pending) >= CLIENT_QUEUE:
            self.slow, self.pending = True, []
        else:
            self.pending.append((key, message))
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()


class EventStream(contextlib.AbstractAsyncContextManager):
    """The live stream of one gateway process: appends what the consumer hands it, reads the shared
    Redis Stream once and fans each entry out to the connected clients."""

    def __init__(self, redis, settings) -> None:
        self.redis, self.settings = redis, settings
        self.key = f"{settings.redis_prefix}gateway:events"
        self._seen_prefix = f"{self.key}:seen:"
        self._script = redis.register_script(_APPEND)
        self._clients: set[_Client] = set()
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> "EventStream":
        if self.settings.serves_api:  # an events-only process has no clients to feed
            self._tasks = [asyncio.create_task(self._read_forever(), name="gateway-sse-reader"),
                           asyncio.create_task(self._tick_forever(), name="gateway-sse-ticker")]
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for client in list(self._clients):
            client.end()

    @property
    def clients(self) -> int:
        return len(self._clients)

    # ---------------------------------------------------------------- appending (the consumer's side)

    async def handle(self, event: Event, ctx: HandlerContext) -> None:
        await self.append([event])

    async def handle_batch(self, contexts: Sequence[HandlerContext]) -> None:
        await self.append([ctx.event for ctx in contexts])

    async def append(self, events: Sequence[Event]) -> list[bytes | None]:
        """Append each event's visible part to the stream, in order, in one round trip; returns each
        one's stream id (None: not appended, a duplicate or a type never streamed)."""
        pipe = self.redis.pipeline(transaction=False)
        queued: list[int] = []
        for index, event in enumerate(events):
            shown = visibility.project(event.to_wire())
            if shown is None:
                SSE_APPENDED.labels("hidden").inc()
                continue
            data = json.dumps(shown, separators=(",", ":"), ensure_ascii=False)
            await self._script(keys=[self.key, f"{self._seen_prefix}{event.event_id}"],
                               args=[DEDUPE_SECONDS, self.settings.events_stream_length, event.type,
                                     event.correlation_id, data], client=pipe)
            queued.append(index)
        ids: list[bytes | None] = [None] * len(events)
        if queued:
            try:
                appended = await pipe.execute()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                # the consumer keeps a message whose handler meets a server away (builtin ConnectionError)
                # and tries again once it is back, where it would dead-letter one failing otherwise
                raise ConnectionError(f"Redis is away: {exc}") from exc
            for index, stream_id in zip(queued, appended):
                ids[index] = stream_id
                SSE_APPENDED.labels("appended" if stream_id else "duplicate").inc()
        return ids

    # ---------------------------------------------------------------- reading and fanning out

    async def _tail(self) -> bytes:
        info = await self._info()
        return info["last-generated-id"] if info else b"0-0"

    async def _info(self) -> dict[str, Any] | None:
        try:
            return await self.redis.xinfo_stream(self.key)
        except redis.exceptions.ResponseError as exc:
            if "no such key" in str(exc).lower():
                return None
            raise

    async def _read_forever(self) -> None:
        last: bytes | None = None
        pause = 0.1
        while True:
            try:
                if last is None:  # from the end: a client connected from now on wants what comes next
                    last = await self._tail()
                replies = await self.redis.xread({self.key: last}, count=READ_COUNT, block=READ_BLOCK_MS)
                pause = 0.1
            except Exception as exc:  # Redis away (or worse): every live stream waits on this loop, so it goes on
                log.warning("live events: reading the stream failed (%r); retrying in %.1fs", exc, pause)
                await asyncio.sleep(pause)
                pause = min(5.0, pause * 2)
                continue
            for _, entries in replies or ():
                if entries:
                    self._fan_out(entries)
                    last = entries[-1][0]

    async def _tick_forever(self) -> None:
        """Wake the idle clients whose heartbeat or recheck is due: one timer for the process instead of
        one per client per wake-up (what a delivery would otherwise pay for)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.settings.events_heartbeat_seconds / 4, REVALIDATE_SECONDS / 4))
            now = loop.time()
            for client in self._clients:
                if client.due <= now:
                    client.wake.set()

    def _fan_out(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        clients = self._clients
        for stream_id, fields in entries:
            if not clients:
                return
            try:
                event_type, correlation = fields[b"t"].decode(), fields[b"c"].decode()
                message = frame(stream_id, fields[b"t"], fields[b"d"])
            except (KeyError, UnicodeDecodeError):
                continue  # not an entry this module wrote
            key = stream_key(stream_id)
            for client in clients:
                if client.filter.admits(event_type, correlation):
                    client.offer(key, message)

    # ---------------------------------------------------------------- one client

    def join(self, filter: visibility.Filter) -> _Client:
        """A new client, receiving live entries from now on (503 when this process serves its maximum)."""
        if len(self._clients) >= self.settings.events_max_clients:
            SSE_REFUSED.inc()
            raise HTTPException(503, f"this gateway serves {self.settings.events_max_clients} event streams "
                                "already; try again shortly", headers={"Retry-After": "5"})
        client = _Client(filter)
        self._clients.add(client)
        SSE_CLIENTS.inc()
        return client

    def leave(self, client: _Client) -> None:
        if client in self._clients:
            self._clients.discard(client)
            SSE_CLIENTS.dec()

    async def start(self, client: _Client, after: str | None) -> tuple[StreamKey | None, bytes]:
        """Where the client's stream starts (the last id it has, None: live only) and what it is sent
        first: the retry hint, and a reset when its id is no longer in the stream."""
        first = b"retry: %d\n\n" % RETRY_MS
        if after is None:
            return None, first
        key = stream_key(after)
        info = await self._info()
        if missed(key, info):
            SSE_RESETS.labels("missed").inc()
            current = info["last-generated-id"] if info else b"0-0"
            return stream_key(current), first + reset_frame(
                "missed", f"events after {after} are no longer kept; reload what you show", current)
        return key, first

    async def messages(self, client: _Client, after: StreamKey | None, first: bytes,
                       recheck: Recheck | None = None) -> AsyncIterator[bytes]:
        """The client's SSE body: `first`, the entries after `after` still in the stream, then live
        entries (none twice: the client joined the fan-out before the replay), heartbeats when idle.

        `recheck` resolves the caller again every REVALIDATE_SECONDS: a stream outlives neither its
        user's deactivation nor its credentials (it ends with `event: reset`, reason "unauthorized")."""
        loop = asyncio.get_running_loop()
        heartbeat = self.settings.events_heartbeat_seconds
        try:
            yield first
            if after is not None:
                async for chunk, after in self._replay(client, after):
                    if chunk:
                        yield chunk
            next_beat = loop.time() + heartbeat
            next_check = loop.time() + REVALIDATE_SECONDS if recheck is not None else float("inf")
            while True:
                if not client.pending and not client.slow and not client.ended:
                    client.due = min(next_beat, next_check)
                    client.wake.clear()
                    await client.wake.wait()
                now = loop.time()
                if now >= next_check:
                    next_check = now + REVALIDATE_SECONDS
                    if not await self._still_allowed(client, recheck):
                        SSE_RESETS.labels("unauthorized").inc()
                        yield reset_frame("unauthorized", "your session or token is no longer valid; log in again")
                        return
                if client.slow:
                    SSE_RESETS.labels("slow").inc()
                    yield reset_frame("slow", "this client fell behind; reconnect with Last-Event-ID to resume")
                    return
                if client.ended:
                    return
                waiting, client.pending = client.pending, []
                if after is not None:
                    waiting = [(key, message) for key, message in waiting if key > after]
                if waiting:
                    after = waiting[-1][0]
                    next_beat = now + heartbeat
                    SSE_DELIVERED.inc(len(waiting))
                    yield b"".join(message for _, message in waiting)
                elif now >= next_beat:
                    next_beat = now + heartbeat
                    yield HEARTBEAT
        finally:
            self.leave(client)

    @staticmethod
    async def _still_allowed(client: _Client, recheck: Recheck) -> bool:
        try:
            caller = await recheck()
        except HTTPException:
            return False
        except Exception as exc:  # the accounts database away: keep serving, the next check tries again
            log.debug("live events: could not recheck a caller: %r", exc)
            return True
        client.filter = visibility.narrowed(client.filter, caller.role)  # a role changed meanwhile
        return True

    async def _replay(self, client: _Client, after: StreamKey) -> AsyncIterator[tuple[bytes, StreamKey]]:
        start = f"({after[0]}-{after[1]}"
        while True:
            entries = await self.redis.xrange(self.key, min=start, max="+", count=READ_COUNT)
            if not entries:
                return
            chunk = []
            for stream_id, fields in entries:
                try:
                    if client.filter.admits(fields[b"t"].decode(), fields[b"c"].decode()):
                        chunk.append(frame(stream_id, fields[b"t"], fields[b"d"]))
                except (KeyError, UnicodeDecodeError):
                    continue
            last = entries[-1][0]
            after = stream_key(last)
            if chunk:
                SSE_DELIVERED.inc(len(chunk))
            yield b"".join(chunk), after
            if len(entries) < READ_COUNT:
                return
            start = "(" + last.decode()


def subscribe(platform, stream: EventStream) -> None:
    """Append every saga event the gateway receives to the live stream (a batch in one round trip)."""
    together = stream.handle_batch  # one object: the bus groups a batch's events by its identity
    for event_type in SUBSCRIPTIONS["gateway"]:
        if event_type in visibility.STREAMED:
            platform.bus.on(event_type, stream.handle, together=together)


@router.get(
    "/api/events", summary="Live saga events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "`id: <stream id>`, `event: <type>`, `data: {event_id, type, occurred_at, "
                                    "producer, correlation_id, data}`; `event: reset` when events were missed "
                                    "(reload) or the client fell behind (reconnect); `: heartbeat` comments"},
               400: {"description": "a filter or Last-Event-ID that cannot be used"},
               401: {"description": "not logged in"},
               503: {"description": "this gateway serves its maximum of event streams"}},
)
async def events(
    request: Request, caller: AnyCaller,
    types: Annotated[str | None, Query(max_length=1024, description="event type globs, comma separated: "
                                       "`workload.*,model.stored` (default: all)")] = None,
    workload: Annotated[str | None, Query(max_length=64, description="only events about this workload "
                                          "(their correlation id)")] = None,
    last_event_id: Annotated[str | None, Query(max_length=48, description="resume after this id (for tools that "
                                               "cannot send the Last-Event-ID header)")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=48)] = None,
) -> StreamingResponse:
    try:
        wanted = visibility.parse_filter(caller.role, types, workload)
    except visibility.FilterError as exc:
        raise HTTPException(400, str(exc)) from None
    after = (last_event_id_header or last_event_id or "").strip() or None
    if after is not None and not _STREAM_ID.fullmatch(after):
        raise HTTPException(400, "Last-Event-ID must be an id this stream sent (e.g. 1700000000000-0)")
    stream: EventStream = request.app.state.events
    client = stream.join(wanted)  # before the replay: what arrives meanwhile waits in its queue
    try:
        start, first = await stream.start(client, after)
    except BaseException:
        stream.leave(client)
        raise
    identity = request.app.state.identity
    body = stream.messages(client, start, first, recheck=lambda: identity.resolve(request))
    # a body never started (the response failed before streaming) still frees its slot
    weakref.finalize(body, stream.leave, client)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
