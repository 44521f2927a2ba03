"""CL-05 across the six running services (issue 22, Ownership): researcher B changing a component that
researcher A's App places makes a new version; A's App keeps the version it placed, and A's next run
executes that version's command, until A upgrades the placement."""
from __future__ import annotations

import uuid

import pytest

from services.kit.demo import Demo
from tests.e2e.conftest import bearer

SMALL = {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB", "max_runtime": "10m"}  # approved automatically


def says(version: str) -> list[str]:
    """The probe component, after a line telling which version of the library entry ran."""
    return ["python", "-c", f"print('library version {version} ran'); import runpy; "
                            "runpy.run_module('components.probe', run_name='__main__')"]


@pytest.fixture(scope="module")
def demo(base, settings):
    return Demo(base, settings, timeout=180, episodes=5)


def ran(demo: Demo, app_id: str, spec_version: str, component_id: str) -> list[str]:
    """Run the App's spec version as A and answer the version lines its component printed."""
    workload = demo.call("POST", "trainer", "/training-requests", expect=202, json={
        "app_id": app_id, "spec_version": spec_version, "resources": SMALL, "name": f"run of {spec_version}",
        "training_config": {"episodes": 5}})["workload_id"]
    demo.wait_status(workload, {"model stored"}, f"{workload} to finish")
    log = demo.call("GET", "scheduler", f"/workloads/{workload}/logs", params={"component": component_id})
    return [line for line in log.text.splitlines() if line.startswith("library version")]


def test_a_run_executes_the_version_its_spec_names_until_the_owner_upgrades(demo, settings):
    owner_b = bearer(settings, "cho", "researcher")  # A is the demo's researcher, kim
    component_id = demo.call("POST", "library", "/components", headers=owner_b, expect=201, json={
        "name": "versioned-probe-" + uuid.uuid4().hex[:6], "image": {"registry": "registry.avatar.io/probe",
                                                                    "tag": "1.0"},
        "resources": {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB"}, "command": says("1")})["component_id"]
    app_id = demo.build_app("Keeps-Its-Version", [("t", ["probe"])],
                            {"probe": {"component_id": component_id}})
    task_id = demo.call("GET", "builder", f"/apps/{app_id}/tasks")[0]["task_id"]
    first = demo.call("GET", "builder", f"/apps/{app_id}/spec")
    assert first["tasks"][0]["components"][0]["library_version"] == "1.0.0"
    demo.ready_in_trainer(app_id)
    assert ran(demo, app_id, first["version"], component_id) == ["library version 1 ran"]

    # B, the component's owner, changes what it runs: version 1.0.1. A's App still names 1.0.0 ...
    changed = demo.call("PATCH", "library", f"/components/{component_id}", headers=owner_b,
                        json={"command": says("2")})
    assert changed["version"] == "1.0.1"
    task = demo.call("GET", "builder", f"/apps/{app_id}/tasks/{task_id}")
    assert [c["library_version"] for c in task["components"]] == ["1.0.0"]
    # ... and A's next run of it still executes 1.0.0's command
    assert ran(demo, app_id, first["version"], component_id) == ["library version 1 ran"]

    # B cannot move A's App on; A can, and the run after that executes 1.0.1
    upgrade = f"/apps/{app_id}/tasks/{task_id}/components/{component_id}/upgrade"
    demo.call("POST", "builder", upgrade, headers=owner_b, expect=403)

    def upgraded() -> dict | None:  # the builder may hear of 1.0.1 after the library answered
        task = demo.call("POST", "builder", upgrade)
        return task if task["components"][0]["library_version"] == "1.0.1" else None

    demo.wait("the upgrade to reach 1.0.1", upgraded, 30)
    second = demo.call("POST", "builder", f"/apps/{app_id}/spec", expect=201)
    assert second["tasks"][0]["components"][0]["library_version"] == "1.0.1"
    demo.wait(f"spec {second['version']} in the trainer",
              lambda: second["version"] in (demo.call("GET", "trainer", f"/apps/{app_id}").get("versions") or []), 30)
    assert ran(demo, app_id, second["version"], component_id) == ["library version 2 ran"]
