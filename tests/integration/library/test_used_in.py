"""CL-03 `used_in`, kept from the builder's events over the real broker."""
from datetime import datetime, timedelta, timezone

from contracts.events import AppSpecCreated, make_event
from contracts.spec import AppSpec
from tests.integration.builder.support import call, new_app, new_task, place
from tests.integration.library.support import publish, register, stack  # noqa: F401
from tests.support.infra import wait_until


async def used_in(library, cid: str) -> list[tuple[str, str, str]]:
    detail = await call(library, "GET", f"/components/{cid}", role="viewer")
    return [(u["app_id"], u["task_id"], u["spec_version"]) for u in detail["used_in"]]


async def eventually_used_in(library, cid: str, expected: list) -> None:
    async def matches() -> bool:
        return await used_in(library, cid) == expected

    await wait_until(matches, timeout=15, message=f"used_in of {cid} to become {expected}")


async def test_used_in_lists_the_app_and_tasks_once_a_spec_is_generated(stack):
    library, builder = stack
    cid = (await register(library))["component_id"]
    app_id = await new_app(builder, "user-of-it")
    first, second = await new_task(builder, app_id, "first"), await new_task(builder, app_id, "second")
    await place(builder, app_id, first, cid)
    await place(builder, app_id, second, cid)
    assert await used_in(library, cid) == []  # placing alone is a draft: only a spec file counts as use
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    await eventually_used_in(library, cid, [(app_id, first, "1.0.0"), (app_id, second, "1.0.0")])
    detail = await call(library, "GET", f"/components/{cid}")
    assert detail["used_in"][0] == {"app_id": app_id, "app_name": "user-of-it", "spec_version": "1.0.0",
                                    "task_id": first, "task_name": "first", "library_version": "1.0.0"}
    listed = await call(library, "GET", "/components", params={"q": detail["name"]})
    assert listed["items"][0]["used_in_count"] == 2


async def test_a_newer_spec_replaces_what_the_app_uses(stack):
    library, builder = stack
    old, new = (await register(library))["component_id"], (await register(library))["component_id"]
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    await place(builder, app_id, task_id, old)
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    await eventually_used_in(library, old, [(app_id, task_id, "1.0.0")])
    await call(builder, "DELETE", f"/apps/{app_id}/tasks/{task_id}/components/{old}")
    await place(builder, app_id, task_id, new)
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    await eventually_used_in(library, new, [(app_id, task_id, "1.0.1")])
    assert await used_in(library, old) == []


async def test_deleting_an_app_clears_its_usage(stack):
    library, builder = stack
    cid = (await register(library))["component_id"]
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    await place(builder, app_id, task_id, cid)
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    await eventually_used_in(library, cid, [(app_id, task_id, "1.0.0")])
    await call(builder, "DELETE", f"/apps/{app_id}", 204)
    await eventually_used_in(library, cid, [])


def spec_event(app_id: str, version: str, created_at: datetime, components: list[str]):
    spec = AppSpec.model_validate({
        "app_id": app_id, "name": "external", "version": version, "created_at": created_at,
        "tasks": [{"task_id": "TASK-001", "name": "t", "components": [
            {"component_id": cid, "name": cid, "image": {"registry": "r.io/x", "tag": "1"},
             "resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "1GB"}} for cid in components]}]})
    return make_event("app.spec_created", AppSpecCreated(app_id=app_id, version=version, spec=spec),
                      producer="builder", correlation_id=app_id)


async def test_an_older_spec_arriving_late_or_twice_changes_nothing(stack, infra):
    library, _ = stack
    first, second = (await register(library))["component_id"], (await register(library))["component_id"]
    now = datetime.now(timezone.utc)
    newer = spec_event("APP-0000AA", "1.0.1", now, [second])
    await publish(infra.rabbitmq_url, newer)
    await eventually_used_in(library, second, [("APP-0000AA", "TASK-001", "1.0.1")])
    await publish(infra.rabbitmq_url, spec_event("APP-0000AA", "1.0.0", now - timedelta(minutes=1), [first]))
    await publish(infra.rabbitmq_url, newer)
    marker = spec_event("APP-0000BB", "1.0.0", now, [first])  # handled after the two above: same queue, in order
    await publish(infra.rabbitmq_url, marker)
    await eventually_used_in(library, first, [("APP-0000BB", "TASK-001", "1.0.0")])
    assert await used_in(library, second) == [("APP-0000AA", "TASK-001", "1.0.1")]


async def test_components_the_library_does_not_know_are_skipped(stack, infra):
    library, _ = stack
    known = (await register(library))["component_id"]
    await publish(infra.rabbitmq_url, spec_event("APP-0000CC", "1.0.0", datetime.now(timezone.utc),
                                                 [known, "CL-REF-UNKNOWN"]))
    await eventually_used_in(library, known, [("APP-0000CC", "TASK-001", "1.0.0")])
