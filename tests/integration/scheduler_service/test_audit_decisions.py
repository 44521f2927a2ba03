"""An admin's queue moves, priority changes, cancels and node drains each leave one `audit.recorded` row in
the scheduler's outbox with before/after and the X-Request-ID of the call (AU-04)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from contracts.events import parse_event
from tests.integration.scheduler_service.support import component, register, workload
from tests.integration.scheduler_service.test_scheduler_queue import _has, approve, start_blocker
from tests.support.infra import wait_until

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)


async def audits(service) -> list:
    rows = await service.platform.pool.fetch(
        "SELECT payload::text AS body FROM outbox WHERE routing_key = 'audit.recorded' ORDER BY id")
    return [parse_event(row["body"]) for row in rows]


async def test_queue_moves_priority_cancel_and_node_status_are_recorded(scheduler, publish, tap):
    def call(request_id: str, role: str = "admin", user: str = "park") -> dict:
        return {**scheduler.headers(role, user=user), "X-Request-ID": request_id}

    await register(publish, scheduler, "CL-PROBE")
    await start_blocker(scheduler, publish, tap)
    for offset, wid in enumerate(("WL-AU-1", "WL-AU-2")):
        await approve(publish, workload(wid, component("CL-PROBE", gpu_count=1, sleep_s=30),
                                        submitted_at=T0 + timedelta(seconds=offset)))
    await wait_until(lambda: _has(scheduler, 2), message="two waiting workloads")

    raised = await scheduler.client.patch("/queue/WL-AU-2", json={"priority": "high"}, headers=call("req-prio"))
    assert raised.status_code == 200, raised.text
    moved = await scheduler.client.patch("/queue/WL-AU-1", json={"before": "WL-AU-2"}, headers=call("req-move"))
    assert moved.status_code == 200, moved.text
    for status, request_id in (("Drain", "req-drain"), ("Drain", "req-drain-again"), ("Active", "req-active")):
        response = await scheduler.client.patch("/nodes/node-b", json={"status": status}, headers=call(request_id))
        assert response.status_code == 200, response.text
    waiting = await scheduler.client.post("/workloads/WL-AU-2/cancel",
                                          headers=call("req-cancel", role="researcher", user="researcher-user"))
    assert waiting.status_code == 200, waiting.text
    running = await scheduler.client.post("/workloads/WL-BLOCK/cancel", headers=call("req-stop"))
    assert running.status_code == 202, running.text
    for wid in ("WL-BLOCK", "WL-AU-1"):
        await scheduler.client.post(f"/workloads/{wid}/cancel", headers=scheduler.headers("admin"))
        await tap.wait_for("workload.cancelled", wid)
    records = [event for event in await audits(scheduler) if event.data.request_id is not None]

    assert [(e.data.action, e.data.request_id) for e in records] == [
        ("scheduler.priority_change", "req-prio"), ("scheduler.queue_move", "req-move"),
        ("scheduler.node_drain", "req-drain"), ("scheduler.node_activate", "req-active"),
        ("scheduler.cancel", "req-cancel"), ("scheduler.cancel", "req-stop")]
    prio, move, drain, active, cancel, stop = records
    assert (prio.data.before, prio.data.after) == ({"priority": "normal", "position": 2},
                                                   {"priority": "high", "position": 1})
    assert (prio.data.actor, prio.data.actor_role, prio.data.target_type, prio.correlation_id) == (
        "park", "admin", "workload", "WL-AU-2")
    assert (move.data.before, move.data.after) == (
        {"priority": "normal", "position": 2}, {"priority": "high", "position": 1, "placed_before": "WL-AU-2"})
    assert (drain.data.target_type, drain.data.target_id, drain.data.before, drain.data.after) == (
        "node", "node-b", {"status": "Active"}, {"status": "Drain"})
    assert (active.data.before, active.data.after) == ({"status": "Drain"}, {"status": "Active"})
    assert (cancel.data.actor, cancel.data.actor_role, cancel.data.before, cancel.data.after) == (
        "researcher-user", "researcher", {"status": "waiting"}, {"status": "cancelled"})
    assert (stop.data.target_id, stop.data.before, stop.data.after) == (
        "WL-BLOCK", {"status": "running"}, {"status": "stopping"})
    assert all(len(e.data.trace_id or "") == 32 for e in records)
