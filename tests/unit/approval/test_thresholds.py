from datetime import datetime, timezone

import pytest

from services.approval.domain import ApprovalRequest, Thresholds, approval_reasons
from tests.unit.approval.factory import seed_spec, small_spec, workload

NOW = datetime(2026, 2, 9, 10, 0, tzinfo=timezone.utc)
DEFAULTS = Thresholds()


def test_three_gpus_and_127gb_run_without_approval():
    assert approval_reasons(workload(small_spec((3, "127GB"))), DEFAULTS) == []


@pytest.mark.parametrize("resources", [(4, "16GB"), (1, "128GB"), (4, "128GB")])
def test_four_gpus_or_128gb_on_one_component_needs_approval(resources):
    reasons = approval_reasons(workload(small_spec((1, "8GB"), resources), envelope=(1, "8GB")), DEFAULTS)
    assert len(reasons) == 1 and "component-2" in reasons[0]


def test_the_largest_component_decides_not_the_sum():
    spec = small_spec((3, "100GB"), (3, "100GB"), (3, "100GB"))  # 9 GPUs and 300GB in total
    assert approval_reasons(workload(spec, envelope=(3, "100GB")), DEFAULTS) == []


def test_binary_units_compare_by_bytes():
    assert approval_reasons(workload(small_spec((1, "120GiB"))), DEFAULTS)  # 128.8 GB
    assert approval_reasons(workload(small_spec((1, "119GiB"))), DEFAULTS) == []


def test_the_requested_envelope_counts_too():
    reasons = approval_reasons(workload(small_spec((2, "32GB")), envelope=(4, "32GB")), DEFAULTS)
    assert reasons == ["requested resources: 4 GPUs >= 4"]


def test_seed_example_needs_approval_because_of_rl_agent():
    reasons = approval_reasons(workload(seed_spec(), envelope=(2, "64GB")), DEFAULTS)
    assert reasons == ["component 'rl-agent' (CL-REF-002) in TASK-001: 4 GPUs >= 4, memory 128GB >= 128GB"]


def test_thresholds_are_configurable():
    spec = small_spec((4, "128GB"))
    assert approval_reasons(workload(spec), Thresholds(gpu_count=8, memory="256GB")) == []
    assert approval_reasons(workload(spec), Thresholds(gpu_count=2, memory="256GB"))


def test_below_threshold_is_approved_at_once_without_a_loop_test():
    request = ApprovalRequest.receive(workload(small_spec((3, "127GB"))), DEFAULTS, NOW)
    assert request.status == "approved" and request.auto_approved and request.loop_test is None
    [(event_type, payload, *_)] = request.events
    assert event_type == "workload.approved" and payload.auto is True and payload.approved_by is None


def test_above_threshold_waits_with_a_pending_loop_test():
    request = ApprovalRequest.receive(workload(), DEFAULTS, NOW)
    assert request.status == "pending" and request.warning == "테스트 필요"
    [(event_type, payload, *_)] = request.events
    assert event_type == "approval.required"
    assert payload.loop_test.model_dump(by_alias=True) == {
        "status": "pending", "episodes": None, "results": None, "executedBy": None, "executedAt": None}
