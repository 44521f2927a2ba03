"""While PostgreSQL, Redis or S3 is away every service answers 503 with Retry-After and a message naming the
missing server, never 500, and within seconds; once the server is back the same requests succeed (issue 21).
RabbitMQ away costs a request nothing: its events wait in the outbox and are published once it is back.

The six services run as real processes on a stack of their own, whose ways to the servers are proxies the
test owns (tests/support/proxy.py): every service reaches PostgreSQL and RabbitMQ through one each, the
scheduler Redis through another, the models service S3 through a fourth. Cutting one refuses new connections and cuts the
open ones, what a service sees when the server's host goes down; the server keeps running with its data.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Iterator

import httpx
import pytest

from services.kit.demo import Demo
from services.kit.settings import Settings
from tests.e2e.conftest import running_stack, urls
from tests.e2e.test_saga import PROBE_SMALL, probe_app
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.slow
RETRY_AFTER = "5"  # Settings.dependency_retry_after_seconds' default
ANSWER_WITHIN = 10.0  # seconds: a 503 well inside a client's own timeout (the demo's client waits 30)
ABOVE_THRESHOLD = {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB", "max_runtime": "10m"}  # parks at approval


@dataclass
class Proxies:
    postgres: TcpProxy
    rabbitmq: TcpProxy
    redis: TcpProxy
    s3: TcpProxy

    def all(self) -> tuple[TcpProxy, ...]:
        return self.postgres, self.rabbitmq, self.redis, self.s3


@pytest.fixture(scope="module")
def proxies(infra) -> Iterator[Proxies]:
    s3_port = int(infra.s3_endpoint.rsplit(":", 1)[1])
    # the stack speaks to PostgreSQL, RabbitMQ and Redis on their loopback ports (services/kit/stack.py)
    made = Proxies(TcpProxy("127.0.0.1", 5432).start(), TcpProxy("127.0.0.1", 5672).start(),
                   TcpProxy("127.0.0.1", 6379).start(), TcpProxy("127.0.0.1", s3_port).start())
    try:
        yield made
    finally:
        for proxy in made.all():
            proxy.cut()


@pytest.fixture
def restored(proxies) -> Iterator[Proxies]:
    """Whatever a test cuts is given back, so the next one starts from a whole stack."""
    try:
        yield proxies
    finally:
        for proxy in proxies.all():
            proxy.restore()


@pytest.fixture(scope="module")
async def outage_stack(infra, proxies, tmp_path_factory):
    async with running_stack(infra, tmp_path_factory.mktemp("outage-stack"), postgres_port=proxies.postgres.port,
                             rabbitmq_port=proxies.rabbitmq.port,
                             service_env={"scheduler": {"AVATAR_REDIS_URL": f"redis://127.0.0.1:{proxies.redis.port}/0"},
                                          "models": {"AVATAR_S3_ENDPOINT": proxies.s3.endpoint}}) as stack:
        yield stack


@pytest.fixture(scope="module")
def demo(outage_stack) -> Demo:
    return Demo(urls(outage_stack), Settings(env="local"), timeout=90, episodes=5)


@dataclass
class Trained:
    app_id: str
    workload_id: str
    component_id: str
    model: dict


@pytest.fixture(scope="module")
def trained(demo) -> Trained:
    """One workload run to a stored model before any outage: something to read in every service."""
    components = demo.library_components()
    app_id = probe_app(demo, components, "Outage-Probe", {"output_bytes": 5000})
    workload = demo.submit(app_id, PROBE_SMALL, priority="normal", episodes=5, name="before the outage")
    detail = demo.wait_status(workload, {"model stored"}, "the model to be stored")
    model = demo.call("GET", "models", f"/models/{detail['model']['model_id']}")
    return Trained(app_id, workload, components["probe"]["component_id"], model)


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    path: str
    succeeds: int = 200
    body: dict | None = None
    admin: bool = False
    params: dict | None = None

    def __str__(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.params.items()) if self.params else ""
        return f"{self.method} {self.service}{self.path}{query}"


def send(demo: Demo, call: Call) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    try:
        response = demo.http.request(call.method, f"{demo.base[call.service]}{call.path}", json=call.body,
                                     params=call.params, headers=demo.admin if call.admin else demo.researcher)
    except httpx.HTTPError as exc:  # the service dropped the connection: reported like any wrong answer
        response = httpx.Response(599, text=f"no answer: {exc!r}")
    return response, time.monotonic() - began


def refusal(response: httpx.Response, elapsed: float, dependency: str, named: str) -> str | None:
    """What is wrong with an answer that should be a 503 naming `dependency` (None: nothing)."""
    if response.status_code != 503:
        return f"answered {response.status_code}: {response.text[:300]}"
    detail = response.json().get("detail")
    if response.headers.get("retry-after") != RETRY_AFTER:
        return f"Retry-After {response.headers.get('retry-after')!r}"
    if not isinstance(detail, dict) or detail.get("code") != "dependency_unavailable" or \
            detail.get("dependency") != dependency or named not in detail.get("message", ""):
        return f"detail {detail!r}"
    if elapsed > ANSWER_WITHIN:
        return f"took {elapsed:.1f}s"
    return None


def wait_served(demo: Demo, calls: list[Call], dependency: str, timeout: float = 30) -> dict[str, float]:
    """Each call answers its success once the server is back; until then only 503s naming it. Returns how
    long each took to be served again."""
    began, served, problems = time.monotonic(), {}, []
    while len(served) < len(calls) and time.monotonic() - began < timeout:
        for call in calls:
            if str(call) in served:
                continue
            response, elapsed = send(demo, call)
            if response.status_code == call.succeeds:
                served[str(call)] = time.monotonic() - began
            elif problem := refusal(response, elapsed, dependency, ""):
                problems.append(f"{call} while recovering: {problem}")
        time.sleep(0.2)
    assert not problems, problems
    assert len(served) == len(calls), f"not served again within {timeout}s: {set(map(str, calls)) - set(served)}"
    return served


def counted(demo: Demo, service: str, dependency: str) -> float:
    text = demo.http.get(f"{demo.base[service]}/metrics").text
    match = re.search(rf'^avatar_dependency_unavailable_total\{{dependency="{dependency}",service="{service}"\}} '
                      r'([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_postgresql_away_every_service_answers_503_naming_it_then_serves_again(demo, trained, restored):
    thresholds = demo.call("GET", "approval", "/thresholds")
    calls = [
        Call("builder", "GET", "/apps"),
        Call("builder", "GET", f"/apps/{trained.app_id}"),
        Call("builder", "POST", "/apps", 201, {"name": "Made-During-Outage"}),
        Call("library", "GET", "/components", params={"q": "probe"}),
        Call("library", "GET", f"/components/{trained.component_id}"),
        Call("trainer", "GET", "/training-requests"),
        Call("trainer", "GET", f"/training-requests/{trained.workload_id}"),
        Call("trainer", "POST", "/training-requests", 202,
             {"app_id": trained.app_id, "name": "submitted during the outage", "resources": ABOVE_THRESHOLD}),
        Call("approval", "GET", "/thresholds"),
        Call("approval", "GET", "/approvals"),
        Call("approval", "PUT", "/thresholds", 200, {"gpu_count": thresholds["gpu_count"],
                                                     "memory": thresholds["memory"]}, admin=True),
        Call("scheduler", "GET", f"/workloads/{trained.workload_id}"),
        Call("scheduler", "GET", "/workloads", params={"status": "completed"}),
        Call("scheduler", "PATCH", "/nodes/node-v100-1", 200, {"status": "Active"}, admin=True),
        Call("models", "GET", "/models"),
        Call("models", "GET", f"/models/{trained.model['model_id']}"),
        Call("models", "GET", f"/apps/{trained.app_id}/models"),
    ]
    # reads the scheduler keeps in Redis may still be served; if not, the same 503 as everyone's
    may_be_served = [Call("scheduler", "GET", "/queue"), Call("scheduler", "GET", "/resources")]
    for call in calls + may_be_served:
        response, _ = send(demo, call)
        assert response.status_code == call.succeeds, f"{call} before the outage: {response.text[:300]}"
    counted_before = {service: counted(demo, service, "postgresql") for service in demo.base}

    restored.postgres.cut()
    problems, slowest = [], 0.0
    for _ in range(2):  # the first round meets connections being cut, the second only refused connects
        for call in calls:
            response, elapsed = send(demo, call)
            slowest = max(slowest, elapsed)
            if problem := refusal(response, elapsed, "postgresql", "PostgreSQL"):
                problems.append(f"{call} with PostgreSQL away: {problem}")
        for call in may_be_served:
            response, elapsed = send(demo, call)
            print(f"{call} with PostgreSQL away: {response.status_code}")
            if response.status_code != 200 and (problem := refusal(response, elapsed, "postgresql", "PostgreSQL")):
                problems.append(f"{call} with PostgreSQL away: {problem}")
    assert not problems, problems
    print(f"slowest 503 with PostgreSQL away: {slowest:.3f}s")
    for service in demo.base:  # /metrics needs no database: every service counted its refusals
        assert counted(demo, service, "postgresql") >= counted_before[service] + 2, service

    restored.postgres.restore()
    served = wait_served(demo, calls + may_be_served, "postgresql")
    print(f"served again after PostgreSQL came back within {max(served.values()):.2f}s")


def test_redis_away_the_scheduler_answers_503_naming_it_then_serves_again(demo, trained, restored):
    needs_redis = [Call("scheduler", "GET", "/queue"), Call("scheduler", "GET", "/resources"),
                   Call("scheduler", "GET", "/nodes")]
    served_from_postgresql = [Call("scheduler", "GET", "/workloads", params={"status": "completed"})]
    for call in needs_redis + served_from_postgresql:
        assert send(demo, call)[0].status_code == 200, call
    before = counted(demo, "scheduler", "redis")

    restored.redis.cut()
    problems = []
    for _ in range(2):
        for call in needs_redis:
            response, elapsed = send(demo, call)
            if problem := refusal(response, elapsed, "redis", "Redis"):
                problems.append(f"{call} with Redis away: {problem}")
        for call in served_from_postgresql:
            response, _ = send(demo, call)
            if response.status_code != 200:
                problems.append(f"{call} with Redis away answered {response.status_code}: {response.text[:300]}")
    assert not problems, problems
    assert counted(demo, "scheduler", "redis") >= before + 2 * len(needs_redis)

    restored.redis.restore()
    served = wait_served(demo, needs_redis + served_from_postgresql, "redis")
    print(f"served again after Redis came back within {max(served.values()):.2f}s")


def test_s3_away_model_downloads_answer_503_naming_it_while_model_records_are_served(demo, trained, restored):
    model_id = trained.model["model_id"]
    [output] = [f for f in trained.model["files"] if f["path"].endswith("output.bin")]
    [log] = trained.model["run_logs"]
    downloads = [Call("models", "GET", f"/models/{model_id}/download", params={"file": output["path"]}),
                 Call("models", "GET", f"/models/{model_id}/download"),
                 Call("models", "GET", f"/models/{model_id}/logs/{log['component']}")]
    records = [Call("models", "GET", f"/models/{model_id}"), Call("models", "GET", "/models")]

    restored.s3.cut()
    problems = []
    for call in downloads:
        response, elapsed = send(demo, call)
        if problem := refusal(response, elapsed, "s3", "S3"):
            problems.append(f"{call} with S3 away: {problem}")
    for call in records:  # what PostgreSQL holds is still served
        response, _ = send(demo, call)
        if response.status_code != 200:
            problems.append(f"{call} with S3 away answered {response.status_code}")
    assert not problems, problems

    restored.s3.restore()
    wait_served(demo, downloads, "s3")
    body = send(demo, downloads[0])[0].content
    assert hashlib.sha256(body).hexdigest() == output["sha256"]


def test_rabbitmq_away_requests_are_served_and_their_events_published_once_it_is_back(demo, trained, restored):
    restored.rabbitmq.cut()
    served = [Call("builder", "POST", "/apps", 201, {"name": "Made-Without-Broker"}),
              Call("builder", "GET", "/apps"), Call("library", "GET", "/components", params={"q": "probe"}),
              Call("trainer", "GET", "/training-requests"), Call("approval", "GET", "/approvals"),
              Call("scheduler", "GET", f"/workloads/{trained.workload_id}"), Call("scheduler", "GET", "/queue"),
              Call("models", "GET", f"/models/{trained.model['model_id']}")]
    problems = []
    for call in served:
        response, _ = send(demo, call)
        if response.status_code != call.succeeds:
            problems.append(f"{call} with RabbitMQ away answered {response.status_code}: {response.text[:300]}")
    # a submit is written with its event to the outbox: accepted now, published later
    submitted, _ = send(demo, Call("trainer", "POST", "/training-requests", 202, {
        "app_id": trained.app_id, "name": "submitted without a broker", "resources": ABOVE_THRESHOLD}))
    assert submitted.status_code == 202, submitted.text
    assert not problems, problems
    workload = submitted.json()["workload_id"]
    assert demo.http.get(f"{demo.base['trainer']}/readyz").json()["failed"].keys() == {"rabbitmq"}
    time.sleep(2)
    assert demo.approval(workload) is None  # training.requested has not reached the approval service

    restored.rabbitmq.restore()
    approval = demo.wait("the approval service to receive training.requested", lambda: demo.approval(workload), 45)
    assert approval["workload_id"] == workload
