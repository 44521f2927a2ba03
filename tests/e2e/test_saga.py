"""The training saga end to end, against the six running services (issue: the whole saga)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import aio_pika
import pytest

from services.kit.demo import Demo, StepFailed

PROBE_SMALL = {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB", "max_runtime": "10m"}


@pytest.fixture(scope="module")
def demo(base, settings):
    return Demo(base, settings, timeout=180, episodes=200)


@pytest.fixture(scope="module")
def components(demo):
    return demo.library_components()


def probe_app(demo, components, name, params, resources=None):
    overrides = {"params": params}
    if resources:
        overrides["resources"] = resources
    app_id = demo.build_app(name, [("probe-task", [("probe", overrides)])], components)
    demo.ready_in_trainer(app_id)
    return app_id


def allocated_gpus(demo) -> int:
    resources = demo.call("GET", "scheduler", "/resources", headers=demo.admin)
    return sum(item["allocated"] for item in resources["gpus"])


def test_happy_path_with_approval_then_auto_approval(demo):
    demo.run()
    assert allocated_gpus(demo) == 0


def test_rejection_with_a_comment_ends_the_saga(demo, components):
    app_id = demo.build_app("Reject-Me", [("t", ["rl-agent"])], components)
    demo.ready_in_trainer(app_id)
    workload = demo.submit(app_id, {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB", "max_runtime": "1h"},
                           priority="normal", episodes=10, name="to reject")
    demo.wait("approval request", lambda: demo.approval(workload))
    demo.call("POST", "approval", f"/approvals/{workload}/reject", headers=demo.admin,
              json={"comment": "GPU 예산 초과"})
    detail = demo.wait_status(workload, {"rejected"}, "rejection")
    rejected = [item for item in detail["timeline"] if item["type"] == "workload.rejected"]
    assert rejected and rejected[0]["details"]["comment"] == "GPU 예산 초과"
    assert rejected[0]["details"]["rejected_by"] == "admin"


def test_failed_loop_test_blocks_approval(demo, components):
    app_id = probe_app(demo, components, "Broken-Test", {"exit_code": 3},
                       {"gpu_type": "A100", "gpu_count": 4, "memory": "16GB"})
    workload = demo.submit(app_id, {"gpu_type": "A100", "gpu_count": 4, "memory": "16GB", "max_runtime": "10m"},
                           priority="normal", episodes=5, name="broken loop test")
    demo.wait("approval request", lambda: demo.approval(workload))
    demo.call("POST", "approval", f"/approvals/{workload}/loop-test", headers=demo.admin, json={}, expect=202)
    with pytest.raises(StepFailed, match="the loop test failed"):
        demo.wait("the loop test", lambda: demo._loop_test_done(workload))
    refused = demo.call("POST", "approval", f"/approvals/{workload}/approve", headers=demo.admin, expect=409)
    assert "테스트 필요" in json.dumps(refused, ensure_ascii=False)
    assert allocated_gpus(demo) == 0


def test_component_failing_at_run_time_is_compensated(demo, components):
    app_id = probe_app(demo, components, "Fails-At-Run", {"exit_code": 3})
    workload = demo.submit(app_id, PROBE_SMALL, priority="normal", episodes=5, name="fails")
    detail = demo.wait_status(workload, {"failed"}, "the failure")
    failed = [item for item in detail["timeline"] if item["type"] == "workload.failed"][0]
    assert failed["details"]["stage"] == "run"
    assert "3" in failed["details"]["reason"]
    assert allocated_gpus(demo) == 0
    assert demo.call("GET", "models", "/models", params={"app_id": app_id})["total"] == 0
    scheduled = demo.call("GET", "scheduler", f"/workloads/{workload}", headers=demo.admin)
    assert scheduled["status"] == "failed"


def test_max_runtime_exceeded_fails_with_timeout(demo, components):
    app_id = probe_app(demo, components, "Too-Slow", {"sleep_s": 120})
    workload = demo.submit(app_id, {**PROBE_SMALL, "max_runtime": "3s"}, priority="normal", episodes=5, name="slow")
    detail = demo.wait_status(workload, {"failed"}, "the timeout")
    failed = [item for item in detail["timeline"] if item["type"] == "workload.failed"][0]
    assert failed["details"]["stage"] == "timeout"
    assert "timeout" in failed["details"]["reason"]
    assert allocated_gpus(demo) == 0


def test_cancel_while_running(demo, components):
    app_id = probe_app(demo, components, "Cancel-Running", {"sleep_s": 120})
    workload = demo.submit(app_id, PROBE_SMALL, priority="normal", episodes=5, name="cancel me")
    demo.wait_status(workload, {"running"}, "the run to start")
    demo.call("POST", "trainer", f"/training-requests/{workload}/cancel", expect=202)
    demo.wait_status(workload, {"cancelled"}, "the cancellation")
    demo.wait("allocations released", lambda: allocated_gpus(demo) == 0, 30)


def test_cancel_while_queued(demo, components):
    nodes = demo.call("GET", "scheduler", "/nodes", headers=demo.admin)
    names = [node["name"] for node in nodes["items"]]
    try:
        for name in names:
            demo.call("PATCH", "scheduler", f"/nodes/{name}", headers=demo.admin, json={"status": "Drain"})
        app_id = probe_app(demo, components, "Cancel-Queued", {})
        workload = demo.submit(app_id, PROBE_SMALL, priority="low", episodes=5, name="queued")
        demo.wait_status(workload, {"queued"}, "the queue")
        queue = demo.call("GET", "scheduler", "/queue", headers=demo.admin)
        assert workload in json.dumps(queue)
        demo.call("POST", "trainer", f"/training-requests/{workload}/cancel", expect=202)
        demo.wait_status(workload, {"cancelled"}, "the cancellation")
        assert workload not in json.dumps(demo.call("GET", "scheduler", "/queue", headers=demo.admin))
    finally:
        for name in names:
            demo.call("PATCH", "scheduler", f"/nodes/{name}", headers=demo.admin, json={"status": "Active"})


async def publish(stack, routing_key: str, body: bytes) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{stack.vhost}"
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange("avatar.events")
        await exchange.publish(aio_pika.Message(body, content_type="application/json",
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key)


async def test_training_requested_from_another_system_runs_the_whole_saga(demo, components, stack):
    # Built by hand from contracts/schemas/training.requested.json: no project code involved.
    app_id = probe_app(demo, components, "External-Run", {})
    spec = demo.call("GET", "builder", f"/apps/{app_id}/spec")
    workload_id = f"EXT-{uuid.uuid4().hex[:8].upper()}"
    message = {
        "event_id": str(uuid.uuid4()), "type": "training.requested", "version": 1,
        "occurred_at": datetime.now(timezone.utc).isoformat(), "producer": "other-system",
        "correlation_id": workload_id, "causation_id": None,
        "data": {"workloadId": workload_id, "appId": app_id, "specVersion": spec["version"],
                 "name": "from outside", "requester": "other-system", "priority": "normal",
                 "submittedAt": datetime.now(timezone.utc).isoformat(),
                 "resources": {"gpuType": "V100", "gpuCount": 1, "memory": "8GB", "maxRuntime": "10m"},
                 "isTrainingRequest": True,
                 "trainingConfig": {"episodes": 5, "learningRate": 0.001, "batchSize": 64, "gamma": 0.99,
                                    "maxStepsPerEpisode": 100, "envConfig": {}, "rewardParams": {}},
                 "testRunRef": None, "spec": spec},
    }
    await publish(stack, "training.requested", b"{this is not json")
    await publish(stack, "training.requested", json.dumps(message).encode())
    # consumed asynchronously: the trainer answers 404 until it has recorded the request
    demo.wait("the trainer to record the request", lambda: demo.http.get(
        f"{demo.base['trainer']}/training-requests/{workload_id}", headers=demo.researcher).status_code == 200, 30)
    detail = demo.wait_status(workload_id, {"model stored"}, "the external workload's model")
    assert detail["source"] == "other-system"
    # the trainer accepted it (a ready App, the system requesting for itself) and published it as its own
    assert [(item["type"], item["producer"]) for item in detail["timeline"]][:3] == [
        ("training.requested", "other-system"), ("training.requested", "trainer"), ("workload.approved", "approval")]

    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{stack.vhost}")
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("approval.dlq", durable=True)
        letter = await queue.get(no_ack=True, fail=False)
    assert letter is not None and letter.body == b"{this is not json"
    assert letter.headers["x-avatar-dlq-reason"].startswith("invalid event")
