"""App specs and workloads for the trainer and approval tests, built from the example spec of docs/spec.md §2.2."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from contracts.spec import AppSpec
from contracts.workload import RequestedResources, Workload

SEED_EXAMPLE = Path(__file__).parents[1] / "contracts" / "seed001_example.json"


def seed_spec_wire(**changes: Any) -> dict[str, Any]:
    wire = json.loads(SEED_EXAMPLE.read_text())
    wire.update(changes)
    return wire


def seed_spec(**changes: Any) -> AppSpec:
    return AppSpec.model_validate(seed_spec_wire(**changes))


def small_spec(*resources: tuple[int, str], app_id: str = "APP-5MA11A", version: str = "1.0.0") -> AppSpec:
    """One task whose components request the given (gpu_count, memory) each."""
    components = [{"component_id": f"CL-REF-{i:03d}", "name": f"component-{i}",
                   "image": {"registry": "registry.avatar.io/probe", "tag": "1.0"},
                   "resources": {"gpu_type": "A100", "gpu_count": gpus, "memory": memory}, "params": {}}
                  for i, (gpus, memory) in enumerate(resources or ((1, "16GB"),), 1)]
    return AppSpec.model_validate({
        "app_id": app_id, "name": "small-app", "version": version, "tasks": [
            {"task_id": "TASK-001", "name": "train", "components": components, "workflow": []}],
        "created_at": "2026-02-09T09:00:00.000Z"})


def workload(spec: AppSpec | None = None, *, workload_id: str = "WL-0000TEST", requester: str = "kim",
             envelope: tuple[int, str] | None = None, is_training_request: bool = True,
             test_run_ref: str | None = None) -> Workload:
    spec = spec or seed_spec()
    largest = spec.largest_component()
    gpus, memory = envelope or (largest.resources.gpu_count, largest.resources.memory)
    return Workload(
        workload_id=workload_id, app_id=spec.app_id, spec_version=spec.version, name=spec.name, requester=requester,
        submitted_at=datetime(2026, 2, 9, 9, 30, tzinfo=timezone.utc),
        resources=RequestedResources(gpu_type=largest.resources.gpu_type, gpu_count=gpus, memory=memory),
        is_training_request=is_training_request, test_run_ref=test_run_ref, spec=spec)
