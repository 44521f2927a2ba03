import asyncio

from prometheus_client.parser import text_string_to_metric_families

from contracts.events import LoopTestCompleted, RunRecord, WorkloadCancelRequested, make_event
from services.kit.messaging import REASON_HEADER
from tests.integration.approval.saga import (approval_service, approval_status, dead_letters, emit, publish,
                                             tapped)
from tests.support.infra import wait_until
from tests.unit.approval.factory import seed_spec, small_spec, workload

CONVERGING = [72.1, 78.5, 82.0, 85.3, 87.9, 89.4, 90.2, 91.0, 91.6, 92.1]
COLLAPSING = [90.0, 85.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0]


async def submit(url: str, wl) -> None:
    await publish(url, "training.requested", make_event("training.requested", wl, producer="trainer",
                                                        correlation_id=wl.workload_id))


async def start_test(svc, workload_id: str, user: str = "kim", role: str = "researcher", **body):
    return await svc.client.post(f"/approvals/{workload_id}/loop-test", json=body or None,
                                 headers=svc.headers(role, user=user))


async def finish_test(url: str, svc, workload_id: str, *, rewards=None, runs=None) -> dict:
    test_run_id = (await approval_status(svc, workload_id, "pending"))["test_run_id"]
    mode = "rl" if runs is None else "general"
    await emit(url, "looptest.completed", LoopTestCompleted(workload_id=workload_id, test_run_id=test_run_id,
                                                            mode=mode, rewards=rewards or [], runs=runs or []))
    return test_run_id


async def test_below_the_threshold_is_approved_at_once_without_a_loop_test(fresh):
    wl = workload(small_spec((3, "127GB"), (3, "127GB")), workload_id="WL-5MA11001")
    async with approval_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        await submit(fresh.rabbitmq_url, wl)
        approved = await tap.one("workload.approved", wl.workload_id)
        view = await approval_status(svc, wl.workload_id, "approved")
    assert approved.data.auto is True and approved.data.approved_by is None
    assert approved.data.workload.workload_id == wl.workload_id and approved.producer == "approval"
    assert view["auto_approved"] and view["loop_test"] is None and "loopTest" not in view["workload"]
    assert not tap.of("approval.required")


async def test_approval_needs_a_passed_loop_test_and_publishes_one_approval(fresh):
    wl = workload(workload_id="WL-B16A0001", requester="kim")
    async with approval_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        await submit(fresh.rabbitmq_url, wl)
        required = await tap.one("approval.required", wl.workload_id)
        assert "rl-agent" in required.data.reasons[0]
        view = await approval_status(svc, wl.workload_id, "pending")
        assert view["workload"]["needsApproval"] is True and view["warning"] == "테스트 필요"
        assert view["workload"]["loopTest"] == view["loop_test"] == {
            "status": "pending", "episodes": None, "results": None, "executedBy": None, "executedAt": None}
        assert view["workload"]["spec"]["app_id"] == "APP-A1B2C3" and view["requester"] == "kim"

        # approval before the test: refused; and only admins decide at all
        refused = await svc.client.post(f"/approvals/{wl.workload_id}/approve", headers=svc.headers("admin"))
        assert refused.status_code == 409
        assert refused.json()["detail"]["code"] == "test_required"
        assert refused.json()["detail"]["message"].startswith("테스트 필요")
        forbidden = await svc.client.post(f"/approvals/{wl.workload_id}/approve",
                                          headers=svc.headers("researcher", user="kim"))
        assert forbidden.status_code == 403

        # the test: the requester (or an admin) may start it, nobody else
        assert (await start_test(svc, wl.workload_id, user="lee")).status_code == 403
        assert (await start_test(svc, wl.workload_id, user="kim", role="viewer")).status_code == 403
        started = await start_test(svc, wl.workload_id, user="kim")
        assert started.status_code == 202, started.text
        assert started.json()["loop_test"]["status"] == "running"
        assert (await start_test(svc, wl.workload_id, user="kim")).json()["detail"]["code"] == "test_running"
        requested = await tap.one("looptest.requested", wl.workload_id)
        assert (requested.data.mode, requested.data.episodes, requested.data.requested_by) == ("rl", 10, "kim")
        assert requested.data.workload == wl

        test_run_id = await finish_test(fresh.rabbitmq_url, svc, wl.workload_id, rewards=CONVERGING)
        view = await approval_status(svc, wl.workload_id, "awaiting approval")
        passed = await tap.one("looptest.passed", wl.workload_id)
        assert passed.data.test_run_id == test_run_id and view["warning"] is None and view["approvable"]
        results = view["loop_test"]["results"]
        assert view["loop_test"]["status"] == "passed" and view["loop_test"]["episodes"] == 10
        assert view["loop_test"]["executedBy"] == "kim" and len(view["loop_test"]["executedAt"]) == 16
        assert (results["convergence"], results["finalReward"]) == (True, 92.1)
        assert results["log"].startswith("Episode 1: reward=72.1\n")

        # two admins at once, then a third time: one approval on the broker
        first, second = await asyncio.gather(*(
            svc.client.post(f"/approvals/{wl.workload_id}/approve", headers=svc.headers("admin", user=name))
            for name in ("park", "choi")))
        again = await svc.client.post(f"/approvals/{wl.workload_id}/approve", headers=svc.headers("admin"))
        assert [r.status_code for r in (first, second, again)] == [200, 200, 200]
        assert again.json()["status"] == "approved" and again.json()["decided_by"] in ("park", "choi")
        approved = await tap.one("workload.approved", wl.workload_id)
        assert approved.data.auto is False and approved.data.approved_by == again.json()["decided_by"]
        assert await tap.settled_count("workload.approved", wl.workload_id) == 1

        runs = await svc.client.get("/test-runs", params={"app_id": "APP-A1B2C3"}, headers=svc.headers("viewer"))
        exposed = (await svc.client.get("/metrics")).text
        listed = await svc.client.get("/approvals", params={"status": "approved"}, headers=svc.headers("viewer"))
    [run] = runs.json()["items"]
    assert run["test_run_id"] == test_run_id and run["status"] == "passed" and run["mode"] == "rl"
    assert run["resources"]["max_gpu_count"] == 4 and run["resources"]["max_memory"] == "128GB"
    assert run["resources"]["requested"]["gpuCount"] == 4
    assert [item["workload_id"] for item in listed.json()["items"]] == [wl.workload_id]
    counted = {sample.labels["event"] for family in text_string_to_metric_families(exposed)
               for sample in family.samples
               if sample.name == "avatar_workloads_total" and sample.labels["service"] == "approval"}
    assert {"received", "approval_required", "looptest_requested", "looptest_passed", "approved"} <= counted


async def test_a_failed_loop_test_blocks_approval_and_a_rejection_needs_a_comment(fresh):
    wl = workload(workload_id="WL-FA11ED01")
    async with approval_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        await submit(fresh.rabbitmq_url, wl)
        await approval_status(svc, wl.workload_id, "pending")
        assert (await start_test(svc, wl.workload_id, user="admin", role="admin")).status_code == 202
        await finish_test(fresh.rabbitmq_url, svc, wl.workload_id, rewards=COLLAPSING)
        failed = await tap.one("looptest.failed", wl.workload_id)
        assert failed.data.loop_test.status == "failed"
        assert "degrading" in failed.data.loop_test.results["reason"]
        view = await approval_status(svc, wl.workload_id, "pending")
        assert view["loop_test"]["status"] == "failed" and view["warning"] == "테스트 필요"

        refused = await svc.client.post(f"/approvals/{wl.workload_id}/approve", headers=svc.headers("admin"))
        assert refused.status_code == 409 and "테스트 필요" in refused.json()["detail"]["message"]
        for body in ({}, {"comment": "   "}, {"comment": "x" * 2001}):
            response = await svc.client.post(f"/approvals/{wl.workload_id}/reject", json=body,
                                             headers=svc.headers("admin"))
            assert response.status_code == 422, body
        rejected = await svc.client.post(f"/approvals/{wl.workload_id}/reject", json={"comment": "diverges"},
                                         headers=svc.headers("admin", user="park"))
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        event = await tap.one("workload.rejected", wl.workload_id)
        late = await svc.client.post(f"/approvals/{wl.workload_id}/approve", headers=svc.headers("admin"))
    assert (event.data.rejected_by, event.data.comment) == ("park", "diverges")
    assert late.status_code == 409 and late.json()["detail"]["code"] == "already_decided"
    assert not tap.of("workload.approved")


async def test_a_general_workload_is_tested_by_repeated_runs(fresh):
    wl = workload(workload_id="WL-6E4E4A01", is_training_request=False)
    runs = [RunRecord(run=i, success=True, duration_s=0.3 + i / 100) for i in range(1, 6)]
    async with approval_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        await submit(fresh.rabbitmq_url, wl)
        await approval_status(svc, wl.workload_id, "pending")
        await start_test(svc, wl.workload_id)
        requested = await tap.one("looptest.requested", wl.workload_id)
        assert (requested.data.mode, requested.data.episodes) == ("general", 5)
        await finish_test(fresh.rabbitmq_url, svc, wl.workload_id, runs=runs)
        view = await approval_status(svc, wl.workload_id, "awaiting approval")
    assert view["loop_test"]["results"] == {
        "successRate": "100%", "avgDuration": "0.33s",
        "log": "\n".join(f"Run {i}: SUCCESS ({0.3 + i / 100:.2f}s)" for i in range(1, 6))}


async def test_attaching_an_earlier_test_run_follows_the_rules(fresh):
    donor, failing = workload(workload_id="WL-D0D0D001"), workload(workload_id="WL-D0D0D002")
    same, other_version = workload(workload_id="WL-A77AC001"), workload(seed_spec(version="2.0.0"),
                                                                         workload_id="WL-A77AC002")
    async with approval_service(fresh) as svc:
        for wl in (donor, failing, same, other_version):
            await submit(fresh.rabbitmq_url, wl)
        for wl in (donor, failing, same, other_version):
            await approval_status(svc, wl.workload_id, "pending")
        await start_test(svc, donor.workload_id)
        passed_run = await finish_test(fresh.rabbitmq_url, svc, donor.workload_id, rewards=CONVERGING)
        await start_test(svc, failing.workload_id)
        failed_run = await finish_test(fresh.rabbitmq_url, svc, failing.workload_id, rewards=COLLAPSING)
        await approval_status(svc, donor.workload_id, "awaiting approval")
        await wait_until(lambda: _run_status(svc, failed_run, "failed"), message="the failed run")

        async def attach(workload_id, test_run_id, user="kim", role="researcher"):
            return await svc.client.post(f"/approvals/{workload_id}/loop-test/attach",
                                         json={"test_run_id": test_run_id}, headers=svc.headers(role, user=user))

        assert (await attach(same.workload_id, failed_run)).json()["detail"]["code"] == "test_not_passed"
        assert (await attach(other_version.workload_id, passed_run)).json()["detail"]["code"] == "other_spec_version"
        assert (await attach(same.workload_id, "LT-NOPE0000")).status_code == 404
        assert (await attach(same.workload_id, passed_run, user="lee")).status_code == 403
        assert (await attach("WL-NOPE0000", passed_run)).status_code == 404
        attached = await attach(same.workload_id, passed_run)
        assert attached.status_code == 200 and attached.json()["status"] == "awaiting approval"
        assert attached.json()["test_run_id"] == passed_run

        # named at submission, the same rules attach it at once
        referencing = workload(workload_id="WL-A77AC003", test_run_ref=passed_run)
        await submit(fresh.rabbitmq_url, referencing)
        view = await approval_status(svc, referencing.workload_id, "awaiting approval")
    assert view["loop_test"]["status"] == "passed" and view["test_run_id"] == passed_run


async def _run_status(svc, test_run_id: str, status: str) -> bool:
    response = await svc.client.get(f"/test-runs/{test_run_id}", headers=svc.headers("viewer"))
    return response.status_code == 200 and response.json()["status"] == status


async def test_a_duplicate_training_request_creates_one_approval_request(fresh):
    wl = workload(workload_id="WL-D0B1E001")
    event = make_event("training.requested", wl, producer="trainer", correlation_id=wl.workload_id)
    republished = make_event("training.requested", wl, producer="trainer", correlation_id=wl.workload_id)
    async with approval_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        for body in (event, event, republished):
            await publish(fresh.rabbitmq_url, "training.requested", body)
        await tap.one("approval.required", wl.workload_id)
        assert await tap.settled_count("approval.required", wl.workload_id) == 1
        listed = await svc.client.get("/approvals", headers=svc.headers("viewer"))
    assert listed.json()["total"] == 1


async def test_malformed_and_impossible_events_go_to_the_dlq_and_consuming_goes_on(fresh):
    good = workload(small_spec((1, "8GB")), workload_id="WL-600D0001")
    no_components = workload(seed_spec(), workload_id="WL-E4A7E001").model_copy(
        update={"spec": seed_spec(tasks=[])})
    async with approval_service(fresh) as svc:
        await publish(fresh.rabbitmq_url, "training.requested",
                      {"type": "training.requested", "producer": "mes", "correlation_id": "X", "data": {"app": 1}})
        await publish(fresh.rabbitmq_url, "training.requested", b"{not json")
        await submit(fresh.rabbitmq_url, no_components)
        await emit(fresh.rabbitmq_url, "looptest.completed",
                   LoopTestCompleted(workload_id="WL-NOPE0000", test_run_id="LT-NOPE0000", mode="rl", rewards=[1.0]))
        await submit(fresh.rabbitmq_url, good)
        await approval_status(svc, good.workload_id, "approved")
        letters = await wait_until(lambda: _at_least(dead_letters(fresh.rabbitmq_url, "approval"), 4),
                                   message="four dead letters")
    reasons = [letter.headers[REASON_HEADER] for letter in letters]
    assert reasons[0].startswith("invalid event:") and "validation error" in reasons[0]
    assert reasons[1].startswith("invalid event:")
    assert "has no components to run" in reasons[2]
    assert "no test run LT-NOPE0000" in reasons[3]
    assert all(letter.headers["x-avatar-original-routing-key"] for letter in letters)


async def _at_least(found, count: int):
    letters = await found
    return letters if len(letters) >= count else None


async def test_thresholds_are_read_by_all_and_changed_by_admins(fresh):
    wl = workload(workload_id="WL-74E5H001")
    async with approval_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        current = await svc.client.get("/thresholds", headers=svc.headers("viewer"))
        assert (current.json()["gpu_count"], current.json()["memory"]) == (4, "128GB")
        body = {"gpu_count": 8, "memory": "256GB"}
        assert (await svc.client.put("/thresholds", json=body, headers=svc.headers("researcher"))).status_code == 403
        for bad in ({"gpu_count": 0, "memory": "1GB"}, {"gpu_count": 4, "memory": "lots"},
                    {"gpu_count": 4, "memory": "0GB"}, {"gpu_count": 4}):
            assert (await svc.client.put("/thresholds", json=bad, headers=svc.headers("admin"))).status_code == 422
        changed = await svc.client.put("/thresholds", json=body, headers=svc.headers("admin", user="park"))
        assert changed.json()["updated_by"] == "park"
        await submit(fresh.rabbitmq_url, wl)  # 4 GPUs / 128GB is now below the threshold
        approved = await tap.one("workload.approved", wl.workload_id)
    assert approved.data.auto is True


async def test_a_loop_test_without_a_result_fails_after_the_timeout(fresh):
    wl = workload(workload_id="WL-71E0D001")
    async with approval_service(fresh, loop_test_timeout_seconds=1) as svc, tapped(fresh.rabbitmq_url) as tap:
        await submit(fresh.rabbitmq_url, wl)
        await approval_status(svc, wl.workload_id, "pending")
        await start_test(svc, wl.workload_id)
        failed = await tap.one("looptest.failed", wl.workload_id, timeout=10)
    assert "no result from the scheduler within 1s" in failed.data.loop_test.results["reason"]


async def test_cancelling_before_a_decision_ends_the_request(fresh):
    wl = workload(workload_id="WL-CA7CE001")
    async with approval_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        await submit(fresh.rabbitmq_url, wl)
        await approval_status(svc, wl.workload_id, "pending")
        await emit(fresh.rabbitmq_url, "workload.cancel_requested",
                   WorkloadCancelRequested(workload_id=wl.workload_id, requested_by="kim"), producer="trainer")
        cancelled = await tap.one("workload.cancelled", wl.workload_id)
        await approval_status(svc, wl.workload_id, "cancelled")
        refused = await start_test(svc, wl.workload_id)
    assert (cancelled.data.cancelled_by, cancelled.data.was_running) == ("kim", False)
    assert refused.status_code == 409 and refused.json()["detail"]["code"] == "already_decided"
