"""The queue over HTTP: order, reprioritisation, cancel, roles, Redis rebuild, node drain."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from contracts.events import WorkloadApproved, WorkloadCancelRequested
from tests.integration.scheduler_service.support import (allocations, component, component_processes, register,
                                                         workload)
from tests.support.infra import wait_until

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)


async def approve(publish, wl):
    await publish("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl),
                  correlation_id=wl.workload_id)


async def queue_ids(service) -> list[str]:
    response = await service.client.get("/queue", headers=service.headers("viewer"))
    assert response.status_code == 200
    return [item["workload_id"] for item in response.json()["items"]]


async def start_blocker(scheduler, publish, tap, workload_id: str = "WL-BLOCK", sleep_s: float = 30):
    """Occupy both A100s of node-a, so A100 work has to wait."""
    await approve(publish, workload(workload_id, component("CL-PROBE", gpu_count=2, sleep_s=sleep_s)))
    await tap.wait_for("workload.started", workload_id)


async def test_queue_lists_waiting_work_in_priority_order_and_admin_reorders_it(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    await start_blocker(scheduler, publish, tap)
    for wid, priority, offset in (("WL-N", "normal", 0), ("WL-L", "low", 1), ("WL-H", "high", 2)):
        await approve(publish, workload(wid, component("CL-PROBE", gpu_count=1, sleep_s=30), priority=priority,
                                        submitted_at=T0 + timedelta(seconds=offset)))
    await wait_until(lambda: queue_ids(scheduler), message="the queue")
    await wait_until(lambda: _has(scheduler, 3), message="three waiting workloads")
    response = await scheduler.client.get("/queue", headers=scheduler.headers("viewer"))
    items = response.json()["items"]
    assert [(i["position"], i["workload_id"], i["priority"]) for i in items] == [
        (1, "WL-H", "high"), (2, "WL-N", "normal"), (3, "WL-L", "low")]
    assert items[0]["resources"] == {"gpu_type": "A100", "gpu_count": 1, "memory": "1GB", "cpu": 1.0,
                                     "max_runtime": "60s"}
    assert items[0]["requester"] == "researcher-user" and items[0]["status"] == "waiting"
    assert datetime.fromisoformat(items[1]["submitted_at"]) == T0

    admin = scheduler.headers("admin")
    moved = await scheduler.client.patch("/queue/WL-L", json={"after": "WL-H"}, headers=admin)
    assert moved.status_code == 200, moved.text
    assert moved.json()["priority"] == "high" and moved.json()["position"] == 2
    assert await queue_ids(scheduler) == ["WL-H", "WL-L", "WL-N"]
    raised = await scheduler.client.patch("/queue/WL-N", json={"priority": "high"}, headers=admin)
    assert raised.status_code == 200
    assert await queue_ids(scheduler) == ["WL-N", "WL-H", "WL-L"]

    assert (await scheduler.client.patch("/queue/WL-BLOCK", json={"priority": "low"}, headers=admin)).status_code == 409
    missing = await scheduler.client.patch("/queue/WL-NOPE", json={"priority": "low"}, headers=admin)
    assert missing.status_code == 404 and missing.json()["detail"] == "workload WL-NOPE not found"
    assert (await scheduler.client.patch("/queue/WL-N", json={}, headers=admin)).status_code == 422
    assert (await scheduler.client.patch("/queue/WL-N", json={"before": "WL-H", "after": "WL-L"},
                                         headers=admin)).status_code == 422
    assert (await scheduler.client.patch("/queue/WL-N", json={"priority": "low"},
                                         headers=scheduler.headers("researcher"))).status_code == 403

    # capacity frees up: the first two in the new order start, the third keeps waiting
    await scheduler.client.post("/workloads/WL-BLOCK/cancel", headers=admin)
    await tap.wait_for("workload.started", "WL-N")
    await tap.wait_for("workload.started", "WL-H")
    assert await queue_ids(scheduler) == ["WL-L"]
    for wid in ("WL-N", "WL-H", "WL-L"):
        await scheduler.client.post(f"/workloads/{wid}/cancel", headers=admin)
        await tap.wait_for("workload.cancelled", wid)
    assert component_processes("WL-N") == [] and await allocations(scheduler) == []


async def _has(service, count: int) -> bool:
    return len(await queue_ids(service)) == count


async def test_cancel_waiting_and_running_work_leaves_nothing_behind(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    await start_blocker(scheduler, publish, tap, "WL-RUN")
    await approve(publish, workload("WL-WAIT", component("CL-PROBE", gpu_count=1)))
    await wait_until(lambda: _has(scheduler, 1), message="a waiting workload")
    await wait_until(lambda: component_processes("WL-RUN"), message="the running component")

    assert (await scheduler.client.post("/workloads/WL-WAIT/cancel",
                                        headers=scheduler.headers("viewer"))).status_code == 403
    other = await scheduler.client.post("/workloads/WL-WAIT/cancel",
                                        headers=scheduler.headers("researcher", user="someone-else"))
    assert other.status_code == 403
    waiting = await scheduler.client.post("/workloads/WL-WAIT/cancel", headers=scheduler.headers("researcher"))
    assert waiting.status_code == 200 and waiting.json() == {"workload_id": "WL-WAIT", "status": "cancelled"}
    cancelled = await tap.wait_for("workload.cancelled", "WL-WAIT")
    assert cancelled.data.was_running is False and cancelled.data.cancelled_by == "researcher-user"
    await wait_until(lambda: _has(scheduler, 0), message="an empty queue")

    running = await scheduler.client.post("/workloads/WL-RUN/cancel", headers=scheduler.headers("admin"))
    assert running.status_code == 202 and running.json()["status"] == "stopping"
    cancelled = await tap.wait_for("workload.cancelled", "WL-RUN")
    assert cancelled.data.was_running is True and cancelled.data.cancelled_by == "admin-user"
    assert await allocations(scheduler) == []
    assert component_processes("WL-RUN") == []

    again = await scheduler.client.post("/workloads/WL-RUN/cancel", headers=scheduler.headers("admin"))
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert (await scheduler.client.post("/workloads/WL-NONE/cancel",
                                        headers=scheduler.headers("admin"))).status_code == 404
    assert tap.emitted("WL-RUN") == ["workload.queued", "workload.started", "workload.cancelled"]
    assert tap.emitted("WL-WAIT") == ["workload.queued", "workload.cancelled"]


async def test_cancel_requested_event_stops_running_work_and_a_cancel_before_approval_sticks(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    await start_blocker(scheduler, publish, tap, "WL-EV")
    await publish("workload.cancel_requested", WorkloadCancelRequested(workload_id="WL-EV", requested_by="trainer"))
    cancelled = await tap.wait_for("workload.cancelled", "WL-EV")
    assert cancelled.data.was_running and cancelled.data.cancelled_by == "trainer"
    assert component_processes("WL-EV") == []

    await publish("workload.cancel_requested", WorkloadCancelRequested(workload_id="WL-EARLY", requested_by="kim"))
    await wait_until(lambda: _job_known(scheduler, "WL-EARLY"), message="the early cancel")
    await approve(publish, workload("WL-EARLY", component("CL-PROBE")))
    early = await tap.wait_for("workload.cancelled", "WL-EARLY")
    assert early.data.was_running is False and early.data.cancelled_by == "kim"
    assert tap.emitted("WL-EARLY") == ["workload.cancelled"]


async def _job_known(service, workload_id: str) -> bool:
    async with service.platform.pool.acquire() as conn:
        return bool(await conn.fetchval("SELECT 1 FROM jobs WHERE workload_id = $1", workload_id))


async def test_flushed_redis_is_rebuilt_from_postgres_without_losing_anything(scheduler, publish, tap, redis_client):
    await register(publish, scheduler, "CL-PROBE")
    await start_blocker(scheduler, publish, tap, "WL-HOLD", sleep_s=3)
    for wid, offset in (("WL-Q1", 0), ("WL-Q2", 1), ("WL-Q3", 2)):
        await approve(publish, workload(wid, component("CL-PROBE", gpu_count=2),
                                        submitted_at=T0 + timedelta(seconds=offset)))
    await wait_until(lambda: _has(scheduler, 3), message="three waiting workloads")
    moved = await scheduler.client.patch("/queue/WL-Q3", json={"before": "WL-Q1"}, headers=scheduler.headers())
    assert moved.status_code == 200
    before = await allocations(scheduler)
    assert [(a.workload_id, a.node, a.gpu_indices) for a in before] == [("WL-HOLD", "node-a", (0, 1))]

    prefix = scheduler.settings.redis_prefix
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}*")]
    await redis_client.delete(*keys)
    assert await queue_ids(scheduler) == []

    await wait_until(lambda: _has(scheduler, 3), message="the rebuilt queue")
    assert await queue_ids(scheduler) == ["WL-Q3", "WL-Q1", "WL-Q2"]
    after = await allocations(scheduler)
    assert [(a.allocation_id, a.node, a.gpu_indices) for a in after] == [
        (b.allocation_id, b.node, b.gpu_indices) for b in before]
    nodes = (await scheduler.client.get("/nodes", headers=scheduler.headers("viewer"))).json()["items"]
    assert {n["name"]: n["gpus"] for n in nodes}["node-a"]["A100"]["allocated"] == 2

    for wid in ("WL-HOLD", "WL-Q3", "WL-Q1", "WL-Q2"):
        await tap.wait_for("workload.completed", wid, timeout=30)
    assert [e.data.workload_id for e in tap.of("workload.started")] == ["WL-HOLD", "WL-Q3", "WL-Q1", "WL-Q2"]
    for wid in ("WL-HOLD", "WL-Q1", "WL-Q2", "WL-Q3"):  # (an admin's move also announces queue.changed)
        assert [t for t in tap.emitted(wid) if t != "queue.changed"] == [
            "workload.queued", "workload.started", "workload.completed"]
    assert await allocations(scheduler) == []


async def test_drained_node_takes_no_new_work_until_it_is_active_again(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    admin = scheduler.headers("admin")
    drained = await scheduler.client.patch("/nodes/node-b", json={"status": "Drain"}, headers=admin)
    assert drained.status_code == 200
    assert drained.json()["status"] == "Drain" and drained.json()["override"] == "Drain"
    announced = (await tap.wait_for("node.status_changed")).data  # the console's screens redraw
    assert (announced.name, announced.status, announced.previous, announced.changed_by) == (
        "node-b", "Drain", "Active", "admin-user")
    await approve(publish, workload("WL-V", component("CL-PROBE", gpu_type="V100", gpu_count=1)))
    await wait_until(lambda: _has(scheduler, 1), message="the waiting workload")
    await scheduler.app.state.scheduler.engine.run_once()
    assert await queue_ids(scheduler) == ["WL-V"] and not tap.of("workload.started", "WL-V")

    nodes = (await scheduler.client.get("/nodes", headers=scheduler.headers("viewer"))).json()["items"]
    assert {n["name"]: n["status"] for n in nodes} == {"node-a": "Active", "node-b": "Drain"}
    assert (await scheduler.client.patch("/nodes/node-x", json={"status": "Drain"}, headers=admin)).status_code == 404
    assert (await scheduler.client.patch("/nodes/node-b", json={"status": "Asleep"}, headers=admin)).status_code == 422
    assert (await scheduler.client.patch("/nodes/node-b", json={"status": "Active"},
                                         headers=scheduler.headers("researcher"))).status_code == 403

    assert (await scheduler.client.patch("/nodes/node-b", json={"status": "Active"}, headers=admin)).status_code == 200
    started = await tap.wait_for("workload.started", "WL-V")
    # one announcement per change: the refused calls above changed nothing
    assert [(e.data.name, e.data.previous, e.data.status) for e in tap.of("node.status_changed")] == [
        ("node-b", "Active", "Drain"), ("node-b", "Drain", "Active")]
    assert started.data.allocations[0].node == "node-b"
    await tap.wait_for("workload.completed", "WL-V")


async def test_component_larger_than_any_node_fails_at_allocation(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    await approve(publish, workload("WL-HUGE", component("CL-PROBE", gpu_count=4)))
    failed = await tap.wait_for("workload.failed", "WL-HUGE")
    assert failed.data.stage == "allocation" and failed.data.component_id == "CL-PROBE"
    assert "needs 4×A100" in failed.data.reason
    assert await queue_ids(scheduler) == []


async def test_every_endpoint_checks_the_callers_role(scheduler):
    viewer = scheduler.headers("viewer")
    for path in ("/queue", "/workloads", "/resources", "/resources/workloads", "/nodes"):
        assert (await scheduler.client.get(path, headers=viewer)).status_code == 200, path
        assert (await scheduler.client.get(path)).status_code == 401, path
    assert (await scheduler.client.get("/workloads/WL-X", headers=viewer)).status_code == 404
    assert (await scheduler.client.get("/workloads/WL-X/logs", headers=viewer)).status_code == 404
    assert (await scheduler.client.patch("/queue/WL-X", json={"priority": "low"}, headers=viewer)).status_code == 403
    assert (await scheduler.client.patch("/nodes/node-a", json={"status": "Drain"}, headers=viewer)).status_code == 403
    assert (await scheduler.client.post("/workloads/WL-X/cancel", headers=viewer)).status_code == 403
    assert (await scheduler.client.post("/workloads/WL-X/cancel")).status_code == 401
