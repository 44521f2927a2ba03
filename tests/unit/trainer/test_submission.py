import re
import uuid
from datetime import datetime, timezone

import pytest

from contracts.events import (LoopTestOutcome, WorkloadApproved, WorkloadFailed, make_event)
from contracts.workload import LoopTest, RequestedResources, WireTrainingConfig
from services.kit.errors import Invalid
from services.trainer import domain
from tests.unit.approval.factory import seed_spec, small_spec, workload

NOW = datetime(2026, 2, 9, 9, 30, tzinfo=timezone.utc)


def submission(**changes) -> domain.Submission:
    values = dict(spec=seed_spec(), requester="kim", resources=None, training_config=WireTrainingConfig())
    values.update(changes)
    return domain.Submission(**values)


def test_workload_ids_are_wl_and_eight_upper_case_hex():
    assert all(re.fullmatch(r"WL-[0-9A-F]{8}", domain.new_workload_id()) for _ in range(50))


def test_resources_default_to_the_largest_single_component():
    resources, largest = domain.resource_defaults(seed_spec())
    assert (largest.component_id, resources.gpu_type, resources.gpu_count, resources.memory) == (
        "CL-REF-002", "A100", 4, "128GB")
    assert resources.max_runtime == "2h"


def test_ties_on_gpus_go_to_the_component_with_more_memory():
    resources, _ = domain.resource_defaults(small_spec((2, "32GB"), (2, "64GB"), (1, "256GB")))
    assert (resources.gpu_count, resources.memory) == (2, "64GB")


def test_the_workload_carries_a_spec_snapshot_with_the_submitted_settings():
    config = domain.merge_training_config(WireTrainingConfig.from_spec(seed_spec().training_config),
                                          {"episodes": 50, "gamma": 0.9}, simulation_seed=7)
    built = domain.build_workload(submission(training_config=config, env_vars={"RUN_MODE": "fast"},
                                             test_run_ref="LT-00000001"),
                                  workload_id="WL-0000ABCD", submitted_at=NOW)
    wire = built.to_wire()
    assert wire["isTrainingRequest"] is True and wire["resources"]["gpuCount"] == 4
    assert wire["trainingConfig"]["episodes"] == 50 and wire["trainingConfig"]["gamma"] == 0.9
    assert wire["trainingConfig"]["learningRate"] == 0.001  # from the App's own training_config
    assert wire["trainingConfig"]["envConfig"] == {"simulation_seed": 7, "max_temp": 850, "min_pressure": 10}
    assert wire["trainingConfig"]["rewardParams"] == {"efficiency_weight": 0.6, "safety_weight": 0.4}
    assert wire["spec"]["training_config"]["episodes"] == 50
    assert wire["spec"]["env_vars"] == {"NCCL_DEBUG": "INFO", "CUDA_VISIBLE_DEVICES": "all", "RUN_MODE": "fast"}
    assert wire["testRunRef"] == wire["spec"]["test_run_ref"] == "LT-00000001"


def test_an_envelope_smaller_than_the_largest_component_is_refused():
    too_small = RequestedResources(gpu_type="A100", gpu_count=2, memory="128GB")
    with pytest.raises(Invalid, match="rl-agent"):
        domain.build_workload(submission(resources=too_small), workload_id="WL-1", submitted_at=NOW)
    too_little_memory = RequestedResources(gpu_type="A100", gpu_count=8, memory="64GB")
    with pytest.raises(Invalid, match="memory 64GB"):
        domain.build_workload(submission(resources=too_little_memory), workload_id="WL-1", submitted_at=NOW)


def test_an_app_without_components_cannot_be_submitted():
    with pytest.raises(Invalid, match="no components"):
        domain.build_workload(submission(spec=seed_spec(tasks=[])), workload_id="WL-1", submitted_at=NOW)


def test_timeline_details_leave_out_the_bulky_copies():
    wl = workload()
    requested = make_event("training.requested", wl, producer="trainer", correlation_id=wl.workload_id)
    summary, details = domain.describe(requested)
    assert summary == "submitted by kim (normal priority)" and "spec" not in details
    approved = make_event("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=False,
                                                                 approved_by="park", workload=wl),
                          producer="approval", correlation_id=wl.workload_id)
    assert domain.describe(approved) == ("approved by park", {"workload_id": wl.workload_id, "auto": False,
                                                              "approved_by": "park"})
    failed = make_event("workload.failed", WorkloadFailed(workload_id="WL-1", stage="run", reason="exit 1"),
                        producer="scheduler", correlation_id="WL-1")
    assert domain.describe(failed)[0] == "failed at run: exit 1"
    outcome = LoopTestOutcome(workload_id="WL-1", test_run_id="LT-1",
                              loop_test=LoopTest(status="failed", results={"reason": "reward is degrading"}))
    event = make_event("looptest.failed", outcome, producer="approval", correlation_id="WL-1",
                       causation_id=uuid.uuid4())
    assert domain.describe(event)[0] == "loop test LT-1 failed: reward is degrading"
