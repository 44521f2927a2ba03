"""The Prometheus metrics of the six running processes after a known flow (issue 8: Metrics).

On a stack of its own (so every counter starts at zero): one request auto-approved that runs and
stores its model, one auto-approved whose component fails, one that needs approval and is rejected,
and one poison message. Then every service's /metrics is scraped and parsed with
prometheus_client.parser, and each metric the Grafana dashboard uses must show the right value.
"""
from __future__ import annotations

import urllib.request

import aio_pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.topology import SUBSCRIPTIONS
from services.kit.demo import Demo
from services.kit.stack import SERVICES
from tests.e2e.conftest import running_stack, urls

pytestmark = pytest.mark.slow
SMALL = {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB", "max_runtime": "10m"}
LARGE = {"gpu_type": "A100", "gpu_count": 4, "memory": "16GB", "max_runtime": "10m"}
POISON_KEY = "training.requested"


@pytest.fixture(scope="module")
async def metered(infra, tmp_path_factory):
    async with running_stack(infra, tmp_path_factory.mktemp("metered"),
                             redis_prefix=f"{infra.redis_prefix}metered:") as stack:
        yield stack


Samples = dict[tuple[str, frozenset], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset, float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def publish_poison(stack, routing_key: str) -> None:
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{stack.vhost}")
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange("avatar.events")
        await exchange.publish(aio_pika.Message(b"{this is not an event", content_type="application/json"),
                               routing_key=routing_key)


def probe_app(demo: Demo, components: dict, name: str, params: dict, resources: dict | None = None) -> str:
    overrides: dict = {"params": params}
    if resources:
        overrides["resources"] = {k: v for k, v in resources.items() if k != "max_runtime"}
    app_id = demo.build_app(name, [("t", [("probe", overrides)])], components)
    demo.ready_in_trainer(app_id)
    return app_id


async def test_metrics_show_the_flow(metered, settings):
    base = urls(metered)
    demo = Demo(base, settings, timeout=120, episodes=5)
    components = demo.library_components()
    ok_app = probe_app(demo, components, "Metered-Ok", {})
    bad_app = probe_app(demo, components, "Metered-Fails", {"exit_code": 3})
    big_app = probe_app(demo, components, "Metered-Rejected", {}, LARGE)

    def submit(app_id: str, resources: dict, name: str) -> str:
        return demo.call("POST", "trainer", "/training-requests", expect=202, json={
            "app_id": app_id, "name": name, "resources": resources, "is_training_request": False,
            "training_config": {"episodes": 5}})["workload_id"]

    ok, bad, big = submit(ok_app, SMALL, "ok"), submit(bad_app, SMALL, "fails"), submit(big_app, LARGE, "rejected")
    demo.wait("the approval request", lambda: demo.approval(big))
    demo.call("POST", "approval", f"/approvals/{big}/reject", headers=demo.admin, json={"comment": "not now"})
    demo.wait_status(ok, {"model stored"}, "the model")
    demo.wait_status(bad, {"failed"}, "the failure")
    demo.wait_status(big, {"rejected"}, "the rejection")
    await publish_poison(metered, POISON_KEY)
    poisoned = {service for service, keys in SUBSCRIPTIONS.items() if POISON_KEY in keys}
    inventory = {item["gpu_type"]: item["total"] for item in
                 demo.call("GET", "scheduler", "/resources", headers=demo.admin)["gpus"]}

    def settled() -> dict[str, Samples] | None:
        scraped = {service: scrape(base[service]) for service in SERVICES}
        quiet = all(value(scraped[s], "avatar_outbox_pending", service=s) == 0 for s in SERVICES)
        dead = all(value(scraped[s], "avatar_dlq_depth", service=s) == (1 if s in poisoned else 0) for s in SERVICES)
        return scraped if quiet and dead else None

    scraped = demo.wait("the outboxes to drain and the DLQ depth to be sampled", settled, 30)
    trainer, approval, scheduler, models = (scraped[s] for s in ("trainer", "approval", "scheduler", "models"))

    # workloads submitted / approved / rejected / completed / failed, each counted once by its owner
    workloads = "avatar_workloads_total"
    assert value(trainer, workloads, service="trainer", event="submitted") == 3
    assert value(approval, workloads, service="approval", event="received") == 3
    assert value(approval, workloads, service="approval", event="auto_approved") == 2
    assert value(approval, workloads, service="approval", event="approval_required") == 1
    assert value(approval, workloads, service="approval", event="rejected") == 1
    assert value(approval, workloads, service="approval", event="approved") is None  # no admin approval
    assert value(scheduler, workloads, service="scheduler", event="queued") == 2
    assert value(scheduler, workloads, service="scheduler", event="started") == 2
    assert value(scheduler, workloads, service="scheduler", event="completed") == 1
    assert value(scheduler, workloads, service="scheduler", event="failed") == 1
    assert value(models, workloads, service="models", event="model.stored") == 1
    assert series(scheduler, "avatar_workloads_failed_total") == {frozenset({("reason", "component_failed")}): 1}
    # the server's half of each submit's latency: three accepted submits under the route's template
    submits = {"service": "trainer", "method": "POST", "route": "/training-requests", "code": "202"}
    assert value(trainer, "avatar_http_request_duration_seconds_count", **submits) == 3
    assert value(trainer, "avatar_http_request_duration_seconds_bucket", le="+Inf", **submits) == 3
    assert 0 < value(trainer, "avatar_http_request_duration_seconds_sum", **submits) < 30
    submitted_anywhere = sum(v for s in SERVICES for labels, v in series(scraped[s], workloads).items()
                             if dict(labels)["event"] == "submitted")
    assert submitted_anywhere == 3  # the dashboard sums by event: nothing is counted twice

    # saga step durations (histograms): the scheduler's own steps, and the trainer's timeline steps
    for step in ("queue_wait", "run"):
        assert value(scheduler, "avatar_saga_step_seconds_count", step=step) == 2
        assert value(scheduler, "avatar_saga_step_seconds_bucket", step=step, le="+Inf") == 2
        assert value(scheduler, "avatar_saga_step_seconds_sum", step=step) >= 0
    for step in ("workload.completed", "workload.failed", "workload.rejected", "model.stored"):
        assert value(trainer, "avatar_saga_step_seconds_count", step=step) == 1, step

    # queue depth per priority class, GPUs allocated and idle per type: all work is done
    assert series(scheduler, "avatar_queue_depth") == {
        frozenset({("priority", p)}): 0 for p in ("high", "normal", "low")}
    gpus = series(scheduler, "avatar_gpus")
    assert gpus == {**{frozenset({("gpu_type", t), ("state", "allocated")}): 0 for t in inventory},
                    **{frozenset({("gpu_type", t), ("state", "idle")}): total for t, total in inventory.items()}}

    # outbox, DLQ, retries: every service exposes its own, with the right values
    for service in SERVICES:
        samples = scraped[service]
        assert value(samples, "avatar_outbox_pending", service=service) == 0, service
        assert value(samples, "avatar_outbox_oldest_age_seconds", service=service) == 0, service
        assert value(samples, "avatar_dlq_depth", service=service) == (1 if service in poisoned else 0), service
        assert value(samples, "avatar_dead_lettered_total", service=service) == (1 if service in poisoned else 0)
        assert value(samples, "avatar_consumer_retries_total", service=service) == 0, service
        assert sum(series(samples, "avatar_events_published_total").values()) > 0, service  # all six emit
        # the loop-lag timer has been sampling since start (every 100 ms), each sample in one bucket
        lag_samples = value(samples, "avatar_event_loop_lag_seconds_count", service=service)
        assert lag_samples is not None and lag_samples >= 10, (service, lag_samples)
        assert value(samples, "avatar_event_loop_lag_seconds_bucket", service=service, le="+Inf") == lag_samples
    assert value(models, "avatar_model_store_retries_total") == 0
    assert value(models, "avatar_models_stored_total") == 1
    assert value(models, "avatar_model_store_seconds_count") == 1
    assert value(models, "avatar_models_pending") == 0
