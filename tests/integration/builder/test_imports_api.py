from tests.integration.builder.support import call, connect, new_app, new_task, place
from tests.integration.library.support import register


async def source_app(library, builder, name: str = "PreProcessor-App") -> tuple[str, list[str]]:
    """An App with two tasks: one with an edge, one with a single component."""
    a, b, c = [(await register(library))["component_id"] for _ in range(3)]
    app_id = await new_app(builder, name)
    first, second = await new_task(builder, app_id, "clean"), await new_task(builder, app_id, "split")
    await place(builder, app_id, first, a, params={"k": 1})
    await place(builder, app_id, first, b)
    await connect(builder, app_id, first, a, b)
    await place(builder, app_id, second, c)
    return app_id, [a, b, c]


async def test_import_copies_the_tasks_with_new_ids_and_remembers_the_source(stack):
    library, builder = stack
    source, (a, b, c) = await source_app(library, builder)
    target = await new_app(builder, "RL-DesignOpt-v1")
    await new_task(builder, target, "own")
    app = await call(builder, "POST", f"/apps/{target}/imports", 201, json={"app_ref": source})
    assert app["imported_apps"] == [{"app_ref": source, "name": "PreProcessor-App"}]
    assert [(t["task_id"], t["name"], t["imported_from"]) for t in app["tasks"]] == [
        ("TASK-001", "own", None), ("TASK-002", "clean", source), ("TASK-003", "split", source)]
    clean = app["tasks"][1]
    assert clean["order"] == [a, b] and clean["workflow"] == [{"from": a, "to": b}]
    assert clean["components"][0]["params"] == {"k": 1}
    assert app["tasks"][2]["order"] == [c]


async def test_an_imported_copy_is_independent_of_its_source(stack):
    library, builder = stack
    source, (a, _, _) = await source_app(library, builder)
    target = await new_app(builder)
    await call(builder, "POST", f"/apps/{target}/imports", 201, json={"app_ref": source})
    await call(builder, "DELETE", f"/apps/{target}/tasks/TASK-001/components/{a}")
    assert (await call(builder, "GET", f"/apps/{source}/tasks/TASK-001"))["order"][0] == a
    await call(builder, "DELETE", f"/apps/{source}", 204)
    assert len((await call(builder, "GET", f"/apps/{target}"))["tasks"]) == 2


async def test_an_app_cannot_import_itself(stack):
    library, builder = stack
    source, _ = await source_app(library, builder)
    answer = await call(builder, "POST", f"/apps/{source}/imports", 422, json={"app_ref": source})
    assert answer["detail"] == {"code": "import_self", "message": f"app {source} cannot import itself"}


async def test_the_same_app_is_imported_once(stack):
    library, builder = stack
    source, _ = await source_app(library, builder)
    target = await new_app(builder)
    await call(builder, "POST", f"/apps/{target}/imports", 201, json={"app_ref": source})
    answer = await call(builder, "POST", f"/apps/{target}/imports", 409, json={"app_ref": source})
    assert answer["detail"]["code"] == "already_imported"
    assert len((await call(builder, "GET", f"/apps/{target}"))["tasks"]) == 2


async def test_importing_an_unknown_or_empty_app_is_refused(stack):
    _, builder = stack
    target, empty = await new_app(builder), await new_app(builder)
    assert (await call(builder, "POST", f"/apps/{target}/imports", 422,
                       json={"app_ref": "APP-000000"}))["detail"]["code"] == "unknown_app"
    assert (await call(builder, "POST", f"/apps/{target}/imports", 422,
                       json={"app_ref": empty}))["detail"]["code"] == "nothing_to_import"
    await call(builder, "POST", f"/apps/{target}/imports", 422, json={"app_ref": "not-an-app"})


async def test_removing_an_import_removes_the_tasks_it_brought(stack):
    library, builder = stack
    source, _ = await source_app(library, builder)
    target = await new_app(builder)
    await new_task(builder, target, "own")
    await call(builder, "POST", f"/apps/{target}/imports", 201, json={"app_ref": source})
    app = await call(builder, "DELETE", f"/apps/{target}/imports/{source}")
    assert (app["imported_apps"], [t["task_id"] for t in app["tasks"]]) == ([], ["TASK-001"])
    await call(builder, "DELETE", f"/apps/{target}/imports/{source}", 404)
    await call(builder, "POST", f"/apps/{target}/imports", 201, json={"app_ref": source})


async def test_deleting_the_last_imported_task_drops_the_import(stack):
    library, builder = stack
    source, _ = await source_app(library, builder)
    target = await new_app(builder)
    await call(builder, "POST", f"/apps/{target}/imports", 201, json={"app_ref": source})
    await call(builder, "DELETE", f"/apps/{target}/tasks/TASK-001", 204)
    assert len((await call(builder, "GET", f"/apps/{target}"))["imported_apps"]) == 1
    await call(builder, "DELETE", f"/apps/{target}/tasks/TASK-002", 204)
    assert (await call(builder, "GET", f"/apps/{target}"))["imported_apps"] == []
