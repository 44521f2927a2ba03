"""GET /api/events against a real gateway on a real port (uvicorn): events published on the real broker
reach SSE clients, filtered, resumable with Last-Event-ID, with heartbeats and resets."""
from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator

import httpx
import pytest
import uvicorn

from contracts.events import (ModelStored, WorkloadCancelled, WorkloadQueued, WorkloadStarted, Event,
                              make_event)
from services.gateway import events as events_module
from services.gateway.main import create_app
from tests.integration.gateway.conftest import gateway_settings
from tests.integration.models.helpers import workload
from tests.support.broker import publish
from tests.support.infra import free_port, wait_until
from tests.support.services import auth


@dataclass
class Served:
    app: object
    url: str
    settings: object

    @property
    def stream(self) -> events_module.EventStream:
        return self.app.state.events


@contextlib.asynccontextmanager
async def served(settings) -> AsyncIterator[Served]:
    """The gateway under uvicorn on a free loopback port: a streamed response is seen as a browser sees it."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), 30, message="the gateway to start")
    if task.done():
        task.result()
    try:
        yield Served(app, f"http://127.0.0.1:{port}", app.state.settings)
    finally:
        server.should_exit = True
        await task


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    @property
    def json(self):
        return json.loads(self.data)


class SseClient:
    """A minimal EventSource: reads the stream in a task, parsing it into messages (comments kept)."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> None:
        self.url, self.headers, self.params = url, headers, params or {}
        self.messages: list[Message] = []
        self.status: int | None = None
        self.response_headers: httpx.Headers | None = None
        self._task: asyncio.Task | None = None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30, read=None))

    async def __aenter__(self) -> "SseClient":
        self._task = asyncio.create_task(self._read())
        await wait_until(lambda: self.status is not None or self._task.done(), 10, message="the stream to open")
        if self._task.done():
            self._task.result()
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()

    async def _read(self) -> None:
        async with self._client.stream("GET", self.url + "/api/events", headers=self.headers,
                                       params=self.params) as response:
            self.status, self.response_headers = response.status_code, response.headers
            if response.status_code != 200:
                await response.aread()
                self.body = response.text
                return
            current = Message()
            async for line in response.aiter_lines():
                if line == "":
                    if current.id or current.event or current.data or current.comments or current.retry is not None:
                        self.messages.append(current)
                    current = Message()
                elif line.startswith(":"):
                    current.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        current.data = value if not current.data else current.data + "\n" + value
                    elif name == "id":
                        current.id = value
                    elif name == "event":
                        current.event = value
                    elif name == "retry":
                        current.retry = int(value)
            self.ended = True

    @property
    def events(self) -> list[Message]:
        return [m for m in self.messages if m.event and m.event != "reset"]

    async def wait_events(self, n: int, timeout: float = 15) -> list[Message]:
        await wait_until(lambda: len(self.events) >= n, timeout, message=f"{n} events (have {len(self.events)})")
        return self.events


def queued(workload_id: str) -> Event:
    return make_event("workload.queued", WorkloadQueued(workload_id=workload_id, priority="normal"),
                      producer="scheduler", correlation_id=workload_id)


def stored(workload_id: str) -> Event:
    return make_event("model.stored", ModelStored(workload_id=workload_id, model_id="M-1", app_id="APP-1", version=1,
                                                  size_bytes=10, files=1),
                      producer="models", correlation_id=workload_id)


async def send(infra, *events: Event) -> None:
    for event in events:
        await publish(infra.rabbitmq_url, event.type, event)


def settings_for(fresh, **overrides):
    # a Redis prefix of the test's own: the live stream starts empty
    return gateway_settings(fresh, redis_prefix=f"{fresh.redis_prefix}{uuid.uuid4().hex[:8]}:", **overrides)


@pytest.fixture
async def gateway_http(fresh) -> AsyncIterator[Served]:
    async with served(settings_for(fresh, events_heartbeat_seconds=5)) as gateway:
        yield gateway


async def test_published_event_reaches_a_connected_client_with_only_its_visible_fields(fresh, gateway_http):
    async with SseClient(gateway_http.url, auth(gateway_http.settings, "viewer")) as client:
        assert client.status == 200
        assert client.response_headers["content-type"].startswith("text/event-stream")
        assert client.response_headers["cache-control"] == "no-cache"
        await wait_until(lambda: client.messages and client.messages[0].retry, 5, message="the retry hint")
        assert client.messages[0].retry == events_module.RETRY_MS
        requested = make_event("training.requested", workload("APP-1", "WL-SSE-1"), producer="trainer",
                               correlation_id="WL-SSE-1")
        await send(fresh, requested)
        [message] = await client.wait_events(1)

    assert message.event == "training.requested"
    body = message.json
    assert set(body) == {"event_id", "type", "occurred_at", "producer", "correlation_id", "data"}
    assert body["event_id"] == str(requested.event_id) and body["correlation_id"] == "WL-SSE-1"
    assert body["producer"] == "trainer" and body["type"] == "training.requested"
    data = body["data"]
    assert data["workloadId"] == "WL-SSE-1" and data["appId"] == "APP-1" and data["requester"] == "researcher-1"
    assert data["resources"]["gpuType"] == "A100"
    # the App spec (env vars, secret references) and the training config never reach the console's stream
    assert "spec" not in data and "trainingConfig" not in data
    assert "SIM_MODE" not in message.data and "max_temp" not in message.data
    # the SSE id is the Redis stream id, the same for every replica
    entries = await gateway_http.app.state.redis.xrange(gateway_http.stream.key, "-", "+")
    assert [entry_id.decode() for entry_id, _ in entries] == [message.id]


async def test_filters_by_type_glob_and_by_workload(fresh, gateway_http):
    headers = auth(gateway_http.settings, "researcher")
    async with SseClient(gateway_http.url, headers, {"types": "workload.*"}) as workloads, \
            SseClient(gateway_http.url, headers, {"types": "model.stored"}) as models, \
            SseClient(gateway_http.url, headers, {"workload": "WL-F-2"}) as one, \
            SseClient(gateway_http.url, headers, {"types": "workload.queued,model.*", "workload": "WL-F-1"}) as both:
        await send(fresh, queued("WL-F-1"), stored("WL-F-1"), queued("WL-F-2"), stored("WL-F-2"),
                   make_event("workload.cancelled", WorkloadCancelled(workload_id="WL-F-2", cancelled_by="kim",
                                                                      was_running=False),
                              producer="scheduler", correlation_id="WL-F-2"))
        await workloads.wait_events(3)
        await models.wait_events(2)
        await one.wait_events(3)
        await both.wait_events(2)
        await asyncio.sleep(0.3)  # nothing more arrives for anyone

    def seen(client):  # the gateway's consumer handles deliveries concurrently: stream order is its own
        return sorted((m.event, m.json["correlation_id"]) for m in client.events)
    assert seen(workloads) == [("workload.cancelled", "WL-F-2"), ("workload.queued", "WL-F-1"),
                               ("workload.queued", "WL-F-2")]
    assert seen(models) == [("model.stored", "WL-F-1"), ("model.stored", "WL-F-2")]
    assert seen(one) == [("model.stored", "WL-F-2"), ("workload.cancelled", "WL-F-2"), ("workload.queued", "WL-F-2")]
    assert seen(both) == [("model.stored", "WL-F-1"), ("workload.queued", "WL-F-1")]


async def test_bad_requests_are_refused_clearly(fresh, gateway_http):
    async with httpx.AsyncClient(base_url=gateway_http.url) as http:
        response = await http.get("/api/events")
        assert response.status_code == 401
        headers = auth(gateway_http.settings, "viewer")
        response = await http.get("/api/events", headers=headers, params={"types": "nothing.*"})
        assert response.status_code == 400 and "matches no event type" in response.text
        response = await http.get("/api/events", headers=headers, params={"types": "workload.queued;drop"})
        assert response.status_code == 400 and "glob" in response.text
        response = await http.get("/api/events", headers=headers, params={"workload": "WL 1\n"})
        assert response.status_code == 400
        response = await http.get("/api/events", headers={**headers, "Last-Event-ID": "yesterday"})
        assert response.status_code == 400 and "Last-Event-ID" in response.text
    assert gateway_http.stream.clients == 0


async def test_reconnect_with_last_event_id_gets_exactly_what_was_missed(fresh, gateway_http):
    headers = auth(gateway_http.settings, "viewer")
    async with SseClient(gateway_http.url, headers) as client:
        await send(fresh, *(queued(f"WL-R-{i}") for i in range(5)))
        first = await client.wait_events(5)
    last_id = first[-1].id
    await wait_until(lambda: gateway_http.stream.clients == 0, 5, message="the slot to be freed")

    await send(fresh, *(queued(f"WL-R-{i}") for i in range(5, 12)))  # published while disconnected
    async def length():
        return await gateway_http.app.state.redis.xlen(gateway_http.stream.key) >= 12
    await wait_until(length, 10, message="the missed events in the stream")

    async with SseClient(gateway_http.url, {**headers, "Last-Event-ID": last_id}) as resumed:
        await resumed.wait_events(7)
        # and live ones follow the replay, with no gap and no repeat
        await send(fresh, *(queued(f"WL-R-{i}") for i in range(12, 15)))
        got = await resumed.wait_events(10)
        await asyncio.sleep(0.3)
    # exactly the missed and the new ones (the stream's order is the order the gateway appended them in)
    assert sorted(m.json["correlation_id"] for m in first + resumed.events) == sorted(f"WL-R-{i}" for i in range(15))
    ids = [m.id for m in first + got]
    assert len(set(ids)) == len(ids) == 15
    assert [events_module.stream_key(i) for i in ids] == sorted(events_module.stream_key(i) for i in ids)
    assert {m.json["correlation_id"] for m in got[-3:]} == {"WL-R-12", "WL-R-13", "WL-R-14"}
    assert not [m for m in resumed.messages if m.event == "reset"]

    # the query parameter does the same for tools that cannot send the header
    async with SseClient(gateway_http.url, headers, {"last_event_id": got[-3].id}) as tool:
        again = await tool.wait_events(2)
        await asyncio.sleep(0.3)
    assert [(m.id, m.data) for m in again] == [(m.id, m.data) for m in got[-2:]]


async def test_resume_joins_live_events_arriving_during_the_replay_without_loss_or_repeat(fresh, gateway_http):
    stream = gateway_http.stream
    headers = auth(gateway_http.settings, "viewer")
    first = await stream.append([queued("WL-J-0")])
    # more than one replay page waiting, and more published while the client replays
    await stream.append([queued(f"WL-J-{i}") for i in range(1, events_module.READ_COUNT + 50)])
    async with SseClient(gateway_http.url, {**headers, "Last-Event-ID": first[0].decode()}) as client:
        await send(fresh, *(queued(f"WL-J-live-{i}") for i in range(20)))
        total = events_module.READ_COUNT + 49 + 20
        got = await client.wait_events(total, timeout=30)
        await asyncio.sleep(0.3)
    ids = [m.id for m in client.events]
    assert len(ids) == len(set(ids)) == total
    assert sorted(m.json["correlation_id"] for m in got[-20:]) == sorted(f"WL-J-live-{i}" for i in range(20))
    assert [events_module.stream_key(i) for i in ids] == sorted(events_module.stream_key(i) for i in ids)


async def test_an_id_no_longer_in_the_stream_gets_reset_then_live_events(fresh):
    async with served(settings_for(fresh, events_stream_length=100)) as gateway:
        stream, headers = gateway.stream, auth(gateway.settings, "viewer")
        [old] = await stream.append([queued("WL-T-0")])
        for start in range(1, 400, 100):  # far beyond the cap: the oldest entries are trimmed
            await stream.append([queued(f"WL-T-{i}") for i in range(start, start + 100)])
        assert await gateway.app.state.redis.xlen(stream.key) < 400
        async with SseClient(gateway.url, {**headers, "Last-Event-ID": old.decode()}) as client:
            await wait_until(lambda: [m for m in client.messages if m.event == "reset"], 5, message="a reset")
            [reset] = [m for m in client.messages if m.event == "reset"]
            assert reset.json["reason"] == "missed" and "reload" in reset.json["message"]
            assert reset.id is not None  # the browser resumes after it next time, not from the trimmed id
            await send(fresh, queued("WL-T-live"))
            [live] = await client.wait_events(1)
            assert live.json["correlation_id"] == "WL-T-live"
            assert not client.events[:-1]  # nothing replayed from before the reset
        # an id still in the window resumes normally
        entries = await gateway.app.state.redis.xrevrange(stream.key, "+", "-", count=3)
        async with SseClient(gateway.url, {**headers, "Last-Event-ID": entries[-1][0].decode()}) as client:
            await client.wait_events(2)
            assert not [m for m in client.messages if m.event == "reset"]


async def test_heartbeats_arrive_while_nothing_happens(fresh):
    async with served(settings_for(fresh, events_heartbeat_seconds=0.2)) as gateway:
        async with SseClient(gateway.url, auth(gateway.settings, "viewer"), {"workload": "WL-QUIET"}) as client:
            await wait_until(lambda: sum("heartbeat" in m.comments for m in client.messages) >= 3, 5,
                             message="three heartbeats")


async def test_a_redelivered_event_is_appended_once(fresh, gateway_http):
    event = queued("WL-D-1")
    [first] = await gateway_http.stream.append([event])
    [again] = await gateway_http.stream.append([event])  # the broker delivering it again after a crash
    assert first is not None and again is None
    assert await gateway_http.app.state.redis.xlen(gateway_http.stream.key) == 1
    # the same through the broker: published twice, one message on the stream
    event2 = queued("WL-D-2")
    async with SseClient(gateway_http.url, auth(gateway_http.settings, "viewer")) as client:
        await send(fresh, event2, event2, queued("WL-D-3"))
        await client.wait_events(2)
        await asyncio.sleep(0.5)
    assert sorted(m.json["correlation_id"] for m in client.events) == ["WL-D-2", "WL-D-3"]


async def test_client_limit_answers_503_and_a_disconnect_frees_the_slot(fresh):
    async with served(settings_for(fresh, events_max_clients=2)) as gateway:
        headers = auth(gateway.settings, "viewer")
        async with SseClient(gateway.url, headers), SseClient(gateway.url, headers):
            assert gateway.stream.clients == 2
            async with httpx.AsyncClient(base_url=gateway.url) as http:
                exposed = (await http.get("/metrics")).text
            assert "avatar_gateway_sse_clients" in exposed and "avatar_gateway_sse_refused_total" in exposed
            async with SseClient(gateway.url, headers) as third:
                assert third.status == 503
                assert third.response_headers["retry-after"]
        await wait_until(lambda: gateway.stream.clients == 0, 5, message="both slots freed")
        async with SseClient(gateway.url, headers) as again:
            assert again.status == 200
            await send(fresh, queued("WL-L-1"))
            await again.wait_events(1)


async def test_a_client_that_falls_behind_gets_reset_and_is_closed(fresh, gateway_http, monkeypatch):
    monkeypatch.setattr(events_module, "CLIENT_QUEUE", 3)
    stream = gateway_http.stream
    from services.gateway.visibility import parse_filter

    client = stream.join(parse_filter("viewer", None, None))
    body = stream.messages(client, None, b"retry: 3000\n\n")
    assert await body.__anext__() == b"retry: 3000\n\n"
    for i in range(5):  # more than its queue holds, before it reads any
        client.offer((1, i), b"id: 1-%d\nevent: workload.queued\ndata: {}\n\n" % i)
    rest = [chunk async for chunk in body]
    [reset] = rest
    assert reset.startswith(b"event: reset\ndata: ") and b'"reason":"slow"' in reset
    assert stream.clients == 0


async def test_two_gateways_each_deliver_every_event_to_their_clients(fresh):
    settings = settings_for(fresh)
    async with served(settings) as one, served(settings) as two:
        headers = auth(settings, "viewer")
        async with SseClient(one.url, headers) as a, SseClient(two.url, headers) as b:
            # their shared queue hands each event to one of them; both clients see all
            await send(fresh, *(queued(f"WL-2G-{i}") for i in range(20)))
            await a.wait_events(20)
            await b.wait_events(20)
            await asyncio.sleep(0.3)
        assert sorted(m.json["correlation_id"] for m in a.events) == sorted(f"WL-2G-{i}" for i in range(20))
        assert [(m.id, m.data) for m in a.events] == [(m.id, m.data) for m in b.events]
        # and a client of one resumes on the other
        async with SseClient(two.url, {**headers, "Last-Event-ID": a.events[9].id}) as c:
            await c.wait_events(10)
            await asyncio.sleep(0.2)
        assert [m.id for m in c.events] == [m.id for m in a.events[10:]]


async def test_allocations_of_a_started_workload_are_streamed(fresh, gateway_http):
    started = make_event("workload.started", WorkloadStarted.model_validate(
        {"workload_id": "WL-S-1", "allocations": [{"task_id": "T-1", "component_id": "C-1", "node": "gpu-1",
                                                   "gpu_type": "A100", "gpu_indices": [0]}]}),
        producer="scheduler", correlation_id="WL-S-1")
    async with SseClient(gateway_http.url, auth(gateway_http.settings, "admin"), {"types": "*"}) as client:
        await send(fresh, started)
        [message] = await client.wait_events(1)
    assert message.json["data"]["allocations"] == [
        {"task_id": "T-1", "component_id": "C-1", "node": "gpu-1", "gpu_type": "A100", "gpu_indices": [0]}]


async def test_a_stream_ends_once_its_credentials_no_longer_hold(fresh, gateway_http, monkeypatch):
    monkeypatch.setattr(events_module, "REVALIDATE_SECONDS", 0.3)
    from services.kit.auth import mint_token

    short = {"Authorization": f"Bearer {mint_token(gateway_http.settings, 'kim', 'viewer', ttl_seconds=3)}"}
    async with SseClient(gateway_http.url, short) as client, \
            SseClient(gateway_http.url, auth(gateway_http.settings, "viewer")) as lasting:
        assert client.status == 200, client.body
        await wait_until(lambda: [m for m in client.messages if m.event == "reset"], 10, message="a reset")
        [reset] = [m for m in client.messages if m.event == "reset"]
        assert reset.json["reason"] == "unauthorized"
        await wait_until(lambda: gateway_http.stream.clients == 1, 5, message="its slot freed")
        await send(fresh, queued("WL-A-1"))
        await lasting.wait_events(1)  # the other, still valid, goes on
        assert not [m for m in lasting.messages if m.event == "reset"]


async def test_redis_away_keeps_the_event_for_a_retry_instead_of_dead_lettering_it(fresh):
    from services.kit.instrument import redis_from_url
    from services.kit.messaging import TRANSIENT_ERRORS

    away = redis_from_url(f"redis://127.0.0.1:{free_port()}/0")
    stream = events_module.EventStream(away, settings_for(fresh))
    with pytest.raises(TRANSIENT_ERRORS):
        await stream.append([queued("WL-AWAY-1")])
    await away.aclose()
