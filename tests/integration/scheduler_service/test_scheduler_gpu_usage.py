"""GPU "used" measured by nvidia-smi, in the resource views. This machine has no GPU: a fake
nvidia-smi (an external tool) stands first on PATH and lists the component as a GPU process."""
from __future__ import annotations

import pytest

from contracts.events import WorkloadApproved
from services.scheduler.core.runners.gpu_probe import MIB
from services.scheduler.main import create_app
from tests.integration.scheduler_service.support import component, register, workload
from tests.support.fake_nvidia_smi import first_on_path, install
from tests.support.infra import wait_until
from tests.support.services import running_service


@pytest.fixture
def nvidia_smi(tmp_path, monkeypatch):
    def put(**behaviour) -> None:
        install(tmp_path / "bin", **behaviour)
        first_on_path(monkeypatch, tmp_path / "bin")

    return put


async def _running_gpu_workload(scheduler, publish, tap, workload_id: str) -> None:
    await wait_until(lambda: scheduler.app.state.scheduler.leadership.leading, message="leadership")
    await register(publish, scheduler, "CL-PROBE")
    wl = workload(workload_id, component("CL-PROBE", gpu_count=1, sleep_s=20))
    await publish("workload.approved", WorkloadApproved(workload_id=workload_id, auto=True, workload=wl))
    await tap.wait_for("workload.started", workload_id)


async def _get(scheduler, path: str):
    return (await scheduler.client.get(path, headers=scheduler.headers("viewer"))).json()


async def _resources_when(scheduler, ready, what: str) -> dict:
    """/resources once ready(body) holds: the reconciler has sampled the run."""
    async def check():
        body = await _get(scheduler, "/resources")
        return body if ready(body) else None

    return await wait_until(check, message=what)


def _gpu_measured(body) -> bool:
    return body["gpu"]["used"] is not None


async def _cancel(scheduler, tap, workload_id: str) -> None:
    await scheduler.client.post(f"/workloads/{workload_id}/cancel", headers=scheduler.headers())
    await tap.wait_for("workload.cancelled", workload_id)


async def test_gpu_use_measured_by_nvidia_smi_shows_in_resources_nodes_and_workloads(
        scheduler_settings, publish, tap, nvidia_smi):
    nvidia_smi(gpus=2, utilization="30 + 10 * i", app_memory_mib=512)
    async with running_service(create_app, scheduler_settings()) as scheduler:
        await _running_gpu_workload(scheduler, publish, tap, "WL-GPU")
        body = await _resources_when(scheduler, _gpu_measured, "a GPU usage sample")
        assert "gpu" in body["measured"]
        assert body["gpu"] == {"total": 3, "allocated": 1, "used": 1, "idle": 2}
        by_type = {g["gpu_type"]: (g["allocated"], g["used"]) for g in body["gpus"]}
        assert by_type == {"A100": (1, 1), "V100": (0, 0)}

        nodes = {n["name"]: n for n in (await _get(scheduler, "/nodes"))["items"]}
        assert nodes["node-a"]["gpus"]["A100"]["used"] == 1 and nodes["node-b"]["gpus"]["V100"]["used"] == 0

        [item] = (await _get(scheduler, "/resources/workloads"))["items"]
        assert item["used"]["gpus"] == 1 and item["used"]["gpu_memory_bytes"] == 512 * MIB
        [run] = item["components"]
        index = run["allocation"]["gpu_indices"][0]
        assert run["usage"]["gpus_busy"] == 1 and run["usage"]["gpu_utilization"] == 30 + 10 * index
        await _cancel(scheduler, tap, "WL-GPU")


async def test_an_idle_gpu_is_measured_idle_not_reported_as_its_allocation(scheduler_settings, publish, tap,
                                                                          nvidia_smi):
    nvidia_smi(gpus=2, utilization="0", processes=False)
    async with running_service(create_app, scheduler_settings()) as scheduler:
        await _running_gpu_workload(scheduler, publish, tap, "WL-GPU-IDLE")
        body = await _resources_when(scheduler, _gpu_measured, "a GPU usage sample")
        assert body["gpu"] == {"total": 3, "allocated": 1, "used": 0, "idle": 2}
        [item] = (await _get(scheduler, "/resources/workloads"))["items"]
        assert item["allocated"]["gpus"] == 1 and item["used"]["gpus"] == 0 and item["used"]["gpu_memory_bytes"] == 0
        await _cancel(scheduler, tap, "WL-GPU-IDLE")


async def test_when_nvidia_smi_fails_gpu_use_is_unknown(scheduler_settings, publish, tap, nvidia_smi):
    nvidia_smi(exit_code=9)
    async with running_service(create_app, scheduler_settings()) as scheduler:
        await _running_gpu_workload(scheduler, publish, tap, "WL-GPU-FAIL")
        body = await _resources_when(scheduler, lambda b: b["memory"]["used_bytes"], "a usage sample")
        assert "gpu" in body["measured"]  # nvidia-smi is there, it just does not answer
        assert body["gpu"]["allocated"] == 1 and body["gpu"]["used"] is None
        assert next(g for g in body["gpus"] if g["gpu_type"] == "A100")["used"] is None
        nodes = {n["name"]: n for n in (await _get(scheduler, "/nodes"))["items"]}
        assert nodes["node-a"]["gpus"]["A100"]["used"] is None
        # memory and CPU are measured per process: the node running the workload shows them
        assert nodes["node-a"]["memory"]["used_bytes"] > 0 and nodes["node-b"]["memory"]["used_bytes"] == 0
        assert nodes["node-a"]["cpu"]["used"] is not None and nodes["node-b"]["cpu"]["used"] == 0
        [item] = (await _get(scheduler, "/resources/workloads"))["items"]
        assert item["used"]["gpus"] is None and item["used"]["gpu_memory_bytes"] is None
        assert item["used"]["memory_bytes"] > 0  # what can be measured still is
        assert "gpus_busy" not in {k for k, v in item["components"][0]["usage"].items() if v is not None}
        await _cancel(scheduler, tap, "WL-GPU-FAIL")
