from datetime import datetime, timezone

import pytest

from contracts.events import LoopTestCompleted
from services.approval.domain import ApprovalRequest, Thresholds, resource_snapshot
from services.kit.errors import Conflict
from tests.unit.approval.factory import seed_spec, small_spec, workload

NOW = datetime(2026, 2, 9, 14, 30, tzinfo=timezone.utc)
CONVERGING = [72.1, 78.5, 82.0, 85.3, 87.9, 89.4, 90.2, 91.0, 91.6, 92.1]


def pending(**kwargs) -> ApprovalRequest:
    request = ApprovalRequest.receive(workload(**kwargs), Thresholds(), NOW)
    request.events.clear()
    return request


def judged_run(request: ApprovalRequest, rewards=CONVERGING, run_id="LT-00000001"):
    run = request.start_loop_test(test_run_id=run_id, episodes=10, by="admin", now=NOW)
    run.complete(LoopTestCompleted(workload_id=request.workload_id, test_run_id=run_id, mode="rl", rewards=rewards),
                 NOW)
    request.record_outcome(run)
    return run


def test_approving_before_the_test_passed_is_refused_with_test_required():
    request = pending()
    with pytest.raises(Conflict) as refused:
        request.approve("admin", NOW)
    assert refused.value.code == "test_required" and refused.value.message.startswith("테스트 필요")
    assert request.status == "pending" and not request.events


def test_a_passed_test_makes_the_request_approvable_in_the_seed_shape():
    request = pending()
    judged_run(request)
    assert request.status == "awaiting approval" and request.warning is None
    assert request.loop_test.model_dump(by_alias=True) == {
        "status": "passed", "episodes": 10,
        "results": {"convergence": True, "avgReward": 86.01, "finalReward": 92.1,
                    "log": "\n".join(f"Episode {i}: reward={r}" for i, r in enumerate(CONVERGING, 1)),
                    "rewards": CONVERGING},
        "executedBy": "admin", "executedAt": "2026-02-09 14:30"}
    assert [e.type for e in request.events] == ["looptest.requested", "looptest.passed"]


def test_a_failed_test_blocks_approval_and_may_be_run_again():
    request = pending()
    judged_run(request, rewards=[90, 80, 70, 60, 50, 40, 30, 20, 10, 0])
    assert request.loop_test.status == "failed" and request.status == "pending"
    with pytest.raises(Conflict):
        request.approve("admin", NOW)
    judged_run(request, run_id="LT-00000002")
    assert request.approve("admin", NOW)


def test_approving_twice_records_one_approval():
    request = pending()
    judged_run(request)
    request.events.clear()
    assert request.approve("admin", NOW) is True
    assert request.approve("admin", NOW) is False
    assert [e.type for e in request.events] == ["workload.approved"]
    assert request.events[0].data.approved_by == "admin" and request.events[0].data.auto is False


def test_a_second_test_cannot_start_while_one_runs():
    request = pending()
    request.start_loop_test(test_run_id="LT-1", episodes=10, by="kim", now=NOW)
    with pytest.raises(Conflict) as refused:
        request.start_loop_test(test_run_id="LT-2", episodes=10, by="kim", now=NOW)
    assert refused.value.code == "test_running"


def test_a_superseded_run_does_not_change_the_loop_test():
    request = pending()
    old = request.start_loop_test(test_run_id="LT-OLD", episodes=10, by="kim", now=NOW)
    other = pending(workload_id="WL-OTHER001")
    newer = judged_run(other, run_id="LT-NEW")
    request.attach(newer)
    old.complete(LoopTestCompleted(workload_id=request.workload_id, test_run_id="LT-OLD", mode="rl",
                                   rewards=[0, 0, 0, 0, 0, 0, 0, 0, 0, 99]), NOW)
    assert request.record_outcome(old) is False
    assert request.loop_test.status == "passed" and request.test_run_id == "LT-NEW"


def test_attach_takes_only_a_passed_run_of_the_same_app_version():
    donor = pending(workload_id="WL-DONOR001")
    passed = judged_run(donor, run_id="LT-PASSED")
    failed_donor = pending(workload_id="WL-DONOR002")
    failed = judged_run(failed_donor, rewards=[9, 1, 9, 1, 9, 1, 9, 1, 9, 1], run_id="LT-FAILED")
    other_version = pending(workload_id="WL-DONOR003", spec=seed_spec(version="2.0.0"))
    other = judged_run(other_version, run_id="LT-OTHER")

    request = pending()
    with pytest.raises(Conflict) as not_passed:
        request.attach(failed)
    assert not_passed.value.code == "test_not_passed"
    with pytest.raises(Conflict) as wrong_version:
        request.attach(other)
    assert wrong_version.value.code == "other_spec_version"
    request.attach(passed)
    assert request.status == "awaiting approval" and request.test_run_id == "LT-PASSED"
    assert [e.type for e in request.events] == ["looptest.passed"]


def test_reject_records_the_comment_and_ends_the_request():
    request = pending()
    assert request.reject("admin", "too many GPUs for a first run", NOW)
    assert request.status == "rejected" and request.comment == "too many GPUs for a first run"
    assert request.reject("admin", "again", NOW) is False
    with pytest.raises(Conflict) as decided:
        request.approve("admin", NOW)
    assert decided.value.code == "already_decided"


def test_auto_approved_requests_have_no_approval_step():
    request = ApprovalRequest.receive(workload(small_spec((1, "16GB"))), Thresholds(), NOW)
    assert request.auto_approved
    with pytest.raises(Conflict) as refused:
        request.start_loop_test(test_run_id="LT-1", episodes=10, by="admin", now=NOW)
    assert refused.value.code == "auto_approved"


def test_cancel_before_a_decision_ends_the_request_here():
    request = pending()
    assert request.cancel("kim", NOW)
    assert request.status == "cancelled" and request.events[-1].type == "workload.cancelled"
    approved = pending()
    judged_run(approved)
    approved.approve("admin", NOW)
    assert approved.cancel("kim", NOW) is False  # the scheduler owns it now


def test_only_the_requester_or_an_admin_may_test_or_attach():
    request = pending(requester="kim")
    assert request.may_act("kim", False) and request.may_act("lee", True)
    assert not request.may_act("lee", False)


def test_a_test_run_snapshots_the_largest_resources_at_run_time():
    snapshot = resource_snapshot(workload())
    assert snapshot["max_gpu_count"] == 4 and snapshot["max_memory"] == "128GB"
    assert snapshot["largest_component"]["component_id"] == "CL-REF-002"
    assert snapshot["requested"] == {"gpuType": "A100", "gpuCount": 4, "memory": "128GB", "cpu": None,
                                     "maxRuntime": "2h"}
