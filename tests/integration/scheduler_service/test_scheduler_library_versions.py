"""CL-05 on the scheduler: a run executes exactly the library version its spec names, from every version the
scheduler has heard of; a spec naming no version (written before placements recorded one) runs the latest
version with its image, else the latest."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

from contracts.events import ComponentChanged, ComponentSnapshot, WorkloadApproved
from contracts.resources import Resources
from contracts.spec import ImageRef
from services.kit.db import KIT_MIGRATIONS, apply_migrations, create_pool
from services.scheduler import store
from services.scheduler.main import MIGRATIONS, create_app
from tests.integration.scheduler_service.support import component, workload
from tests.integration.scheduler_service.test_scheduler_kubernetes import (  # noqa: F401 (fixtures)
    finish, k8s_settings, kube, pod_of)
from tests.support.infra import wait_until
from tests.support.services import running_service

CID = "CL-VERSIONED"


def says(version: str) -> list[str]:
    """A component whose command tells which version of it ran."""
    return ["python", "-c", f"print('library version {version} ran')"]


def published(version: str, tag: str) -> ComponentChanged:
    return ComponentChanged(component=ComponentSnapshot(
        component_id=CID, name="versioned", image=ImageRef(registry="registry.avatar.io/probe", tag=tag),
        version=version, resources=Resources(gpu_type="A100", gpu_count=0, memory="1GB"), command=says(version)))


async def publish_two_versions(publish, scheduler_pool) -> None:
    await publish("component.registered", published("1", "1.0"))
    await publish("component.updated", published("2", "2.0"))

    async def both_heard_of() -> bool:
        return await scheduler_pool.fetchval(
            "SELECT count(*) FROM library_components WHERE component_id = $1", CID) == 2

    await wait_until(both_heard_of, message="both versions in the scheduler's library read model")


def placed(version: str | None, **params):
    return component(CID, **params).model_copy(update={"library_version": version})


def image(tag: str) -> ImageRef:
    return ImageRef(registry="registry.avatar.io/probe", tag=tag)


async def test_each_run_executes_the_version_its_spec_names(scheduler, publish, tap):
    await publish_two_versions(publish, scheduler.platform.pool)
    # The same component in four specs: placed at version 1 (its image since overridden), at version 2, and
    # twice before placements recorded a version: with version 1's image, and with an image of its own.
    specs = {"WL-V1": placed("1").model_copy(update={"image": image("custom")}), "WL-V2": placed("2"),
             "WL-OLD-IMAGE": placed(None).model_copy(update={"image": image("1.0")}),
             "WL-OLD-OTHER": placed(None).model_copy(update={"image": image("custom")})}
    for workload_id, placement in specs.items():
        wl = workload(workload_id, placement)
        await publish("workload.approved", WorkloadApproved(workload_id=workload_id, auto=True, workload=wl),
                      correlation_id=workload_id)
    ran = {}
    for workload_id in specs:
        await tap.wait_for("workload.completed", workload_id)
        log = await scheduler.client.get(f"/workloads/{workload_id}/logs", params={"component": CID},
                                         headers=scheduler.headers("viewer"))
        ran[workload_id] = [line for line in log.text.splitlines() if line.startswith("library version")]
    assert ran == {"WL-V1": ["library version 1 ran"], "WL-V2": ["library version 2 ran"],
                   "WL-OLD-IMAGE": ["library version 1 ran"],  # the version it most likely placed
                   "WL-OLD-OTHER": ["library version 2 ran"]}  # the latest


async def test_a_version_the_scheduler_never_heard_of_runs_nothing_in_its_place(scheduler, publish, tap):
    await publish_two_versions(publish, scheduler.platform.pool)
    wl = workload("WL-V9", placed("9"))
    await publish("workload.approved", WorkloadApproved(workload_id="WL-V9", auto=True, workload=wl),
                  correlation_id="WL-V9")
    failed = await tap.wait_for("workload.failed", "WL-V9")
    assert failed.data.component_id == CID
    assert f"has not heard of version 9 of library component {CID}" in failed.data.reason
    log = await scheduler.client.get("/workloads/WL-V9/logs", params={"component": CID},
                                     headers=scheduler.headers("viewer"))
    assert "library version" not in log.text


async def test_a_pod_runs_the_command_of_the_version_its_spec_names(k8s_settings, kube, publish, tap):  # noqa: F811
    async with running_service(create_app, k8s_settings) as scheduler:
        await publish_two_versions(publish, scheduler.platform.pool)
        # placed at version 1 with the image version 1 had: the pod is version 1, image and command
        wl = workload("WL-K8S-V1", placed("1").model_copy(update={"image": image("1.0")}))
        await publish("workload.approved", WorkloadApproved(workload_id="WL-K8S-V1", auto=True, workload=wl))
        pod = await pod_of(kube, CID)
        container = pod["spec"]["containers"][0]
        assert (container["image"], container["command"]) == ("registry.avatar.io/probe:1.0", says("1"))
        assert pod["metadata"]["labels"]["avatar-library-version"] == "1"
        await finish(kube, pod, 0, "library version 1 ran")
        await tap.wait_for("workload.completed", "WL-K8S-V1")


async def test_the_entries_heard_of_before_versions_were_kept_stay_as_their_version(fresh, tmp_path):
    """Migration 0003 on a read model written before it: each entry becomes the one version heard of."""
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        if migration.name < "0003":
            shutil.copy(migration, tmp_path)
    pool = await create_pool(fresh.postgres_url, "scheduler")
    try:
        await apply_migrations(pool, "scheduler", {"kit": KIT_MIGRATIONS, "scheduler": tmp_path})
        await pool.execute("INSERT INTO library_components (component_id, name, image_registry, image_tag, version,"
                           " command) VALUES ($1, 'versioned', 'registry.avatar.io/probe', '1.0', '1', $2)",
                           CID, says("1"))
        await apply_migrations(pool, "scheduler", {"kit": KIT_MIGRATIONS, "scheduler": MIGRATIONS})
        async with pool.acquire() as conn:
            await store.record_component(conn, published("2", "2.0").component, datetime.now(timezone.utc))
            await store.record_component(conn, published("2", "2.0").component.model_copy(
                update={"command": ["a", "redelivery", "changes", "nothing"]}), datetime.now(timezone.utc))
            found = {version: await store.library_entry(conn, CID, version, "registry.avatar.io/probe", "x")
                     for version in ("1", "2", None)}
        assert found == {"1": store.LibraryEntry("1", tuple(says("1"))), "2": store.LibraryEntry("2", tuple(says("2"))),
                         None: store.LibraryEntry("2", tuple(says("2")))}
    finally:
        await pool.close()
