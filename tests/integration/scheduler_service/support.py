"""Building workloads and checking what a run leaves behind, for the scheduler service tests."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from contracts.events import ComponentChanged, ComponentSnapshot
from contracts.resources import Resources
from contracts.spec import AppSpec, ImageRef, SpecComponent, SpecTask, WorkflowEdge
from contracts.workload import RequestedResources, WireTrainingConfig, Workload
from tests.support.infra import wait_until

PROBE = ["python", "-m", "components.probe"]


# ---------------------------------------------------------------- building workloads

def component(component_id: str, *, name: str | None = None, gpu_type: str = "A100", gpu_count: int = 0,
              memory: str = "1GB", **params: Any) -> SpecComponent:
    return SpecComponent(component_id=component_id, name=name or component_id.lower(),
                         image=ImageRef(registry="registry.avatar.io/probe", tag="1.0"),
                         resources=Resources(gpu_type=gpu_type, gpu_count=gpu_count, memory=memory), params=params)


def workload(workload_id: str, *components: SpecComponent, edges: list[tuple[str, str]] = (),
             priority: str = "normal", max_runtime: str = "60s", requester: str = "researcher-user",
             tasks: list[SpecTask] | None = None, episodes: int = 1000, env_vars: dict | None = None,
             submitted_at: datetime | None = None) -> Workload:
    tasks = tasks or [SpecTask(task_id="TASK-001", name="main", components=list(components),
                               workflow=[WorkflowEdge(**{"from": a, "to": b}) for a, b in edges])]
    spec = AppSpec(app_id=f"APP-{workload_id}", name=f"app-{workload_id}", version="1.0.0", tasks=tasks,
                   env_vars=env_vars or {}, created_at=datetime.now(timezone.utc))
    largest = spec.largest_component()
    return Workload(
        workload_id=workload_id, app_id=spec.app_id, spec_version="1", name=f"wl-{workload_id}", requester=requester,
        priority=priority, submitted_at=submitted_at or datetime.now(timezone.utc),
        resources=RequestedResources(gpu_type=largest.resources.gpu_type, gpu_count=largest.resources.gpu_count,
                                     memory=largest.resources.memory, max_runtime=max_runtime),
        training_config=WireTrainingConfig(episodes=episodes), spec=spec)


def snapshot(component_id: str, command: list[str], *, kind: str = "other",
             registry: str = "registry.avatar.io/probe") -> ComponentChanged:
    return ComponentChanged(component=ComponentSnapshot(
        component_id=component_id, name=component_id.lower(), image=ImageRef(registry=registry, tag="1.0"),
        version="1.0", type=kind, resources=Resources(gpu_type="A100", gpu_count=0, memory="1GB"), command=command))


async def register(publish, scheduler, *component_ids: str, command=PROBE, kind: str = "other",
                   registry: str = "registry.avatar.io/probe") -> None:
    for component_id in component_ids:
        await publish("component.registered", snapshot(component_id, command, kind=kind, registry=registry))

    async def known():
        async with scheduler.platform.pool.acquire() as conn:
            found = await conn.fetchval("SELECT count(*) FROM library_components WHERE component_id = ANY($1::text[])",
                                        list(component_ids))
        return found == len(component_ids)

    await wait_until(known, message="components in the library read model")


# ---------------------------------------------------------------- what is left behind

def component_processes(workload_id: str) -> list[int]:
    """Live (non-zombie) processes started for a workload (found by their env contract)."""
    found = []
    marker = f"AVATAR_WORKLOAD_ID={workload_id}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as env:
                if marker not in env.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


async def allocations(service, workload_id: str | None = None) -> list:
    return await service.app.state.scheduler.allocator.allocations(workload_id=workload_id)


async def job_status(service, workload_id: str) -> str | None:
    response = await service.client.get(f"/workloads/{workload_id}", headers=service.headers("viewer"))
    return response.json().get("status") if response.status_code == 200 else None
