"""Every decision an admin or requester makes here leaves one `audit.recorded` row in the outbox, written
with the decision, naming who, what changed and the X-Request-ID of the call (AU-04)."""
from contracts.events import make_event, parse_event
from tests.integration.approval.saga import approval_service, approval_status, publish
from tests.integration.approval.test_approval_service import CONVERGING, finish_test
from tests.unit.approval.factory import workload


async def audits(svc) -> list:
    rows = await svc.platform.pool.fetch(
        "SELECT payload::text AS body FROM outbox WHERE routing_key = 'audit.recorded' ORDER BY id")
    return [parse_event(row["body"]) for row in rows]


def call(svc, role: str, user: str, request_id: str) -> dict:
    return {**svc.headers(role, user=user), "X-Request-ID": request_id}


async def test_loop_test_approve_reject_and_thresholds_are_recorded_with_before_and_after(fresh):
    approved, rejected = workload(workload_id="WL-AUD17001", requester="kim"), workload(workload_id="WL-AUD17002")
    async with approval_service(fresh) as svc:
        for wl in (approved, rejected):
            await publish(fresh.rabbitmq_url, "training.requested",
                          make_event("training.requested", wl, producer="trainer", correlation_id=wl.workload_id))
            await approval_status(svc, wl.workload_id, "pending")
        started = await svc.client.post(f"/approvals/{approved.workload_id}/loop-test",
                                        headers=call(svc, "researcher", "kim", "req-loop-1"))
        assert started.status_code == 202, started.text
        await finish_test(fresh.rabbitmq_url, svc, approved.workload_id, rewards=CONVERGING)
        await approval_status(svc, approved.workload_id, "awaiting approval")
        for _ in range(2):  # approving twice is one decision
            response = await svc.client.post(f"/approvals/{approved.workload_id}/approve",
                                              headers=call(svc, "admin", "park", "req-approve-1"))
            assert response.status_code == 200, response.text
        refused = await svc.client.post(f"/approvals/{rejected.workload_id}/approve",
                                        headers=call(svc, "admin", "park", "req-refused"))
        assert refused.status_code == 409  # refused: nothing decided, nothing recorded here
        response = await svc.client.post(f"/approvals/{rejected.workload_id}/reject", json={"comment": "too big"},
                                          headers=call(svc, "admin", "choi", "req-reject-1"))
        assert response.status_code == 200, response.text
        response = await svc.client.put("/thresholds", json={"gpu_count": 8, "memory": "256GB"},
                                        headers=call(svc, "admin", "park", "req-thr-1"))
        assert response.status_code == 200, response.text
        records = await audits(svc)

    by_action = {event.data.action: event for event in records}
    assert [event.data.action for event in records] == [
        "approval.loop_test_run", "approval.approve", "approval.reject", "approval.threshold_change"]
    run = by_action["approval.loop_test_run"]
    assert (run.producer, run.correlation_id, run.data.actor, run.data.actor_role) == (
        "approval", approved.workload_id, "kim", "researcher")
    assert run.data.before == {"loop_test_status": "pending", "test_run_id": None}
    assert run.data.after["loop_test_status"] == "running" and run.data.after["episodes"] == 10
    approve = by_action["approval.approve"].data
    assert (approve.actor, approve.actor_role, approve.target_type, approve.target_id) == (
        "park", "admin", "workload", approved.workload_id)
    assert (approve.before, approve.after, approve.request_id) == (
        {"status": "awaiting approval"}, {"status": "approved"}, "req-approve-1")
    assert approve.trace_id is not None and len(approve.trace_id) == 32
    reject = by_action["approval.reject"].data
    assert (reject.actor, reject.comment, reject.after, reject.request_id) == (
        "choi", "too big", {"status": "rejected"}, "req-reject-1")
    thresholds = by_action["approval.threshold_change"]
    assert (thresholds.data.target_type, thresholds.data.before, thresholds.data.after) == (
        "threshold", {"gpu_count": 4, "memory": "128GB"}, {"gpu_count": 8, "memory": "256GB"})
    assert thresholds.correlation_id == "approval" and thresholds.data.request_id == "req-thr-1"


async def test_an_unprintable_or_overlong_request_id_is_not_recorded(fresh):
    async with approval_service(fresh) as svc:
        for gpu_count, request_id in ((5, "x" * 129), (6, "two words")):
            response = await svc.client.put("/thresholds", json={"gpu_count": gpu_count, "memory": "128GB"},
                                            headers=call(svc, "admin", "park", request_id))
            assert response.status_code == 200, response.text
        records = await audits(svc)
    assert [event.data.request_id for event in records] == [None, None]
