import asyncio
import xml.etree.ElementTree as ET

from tests.integration.builder.support import call, connect, new_app, new_task, place, task_with
from tests.integration.library.support import register

CYCLE = "순환 참조가 감지되었습니다. 이 연결을 추가하면 순환이 발생합니다"


async def components(library, count: int, **fields) -> list[str]:
    return [(await register(library, **fields))["component_id"] for _ in range(count)]


async def test_tasks_are_numbered_per_app_and_start_empty(stack):
    _, builder = stack
    first, second = await new_app(builder), await new_app(builder)
    assert [await new_task(builder, first) for _ in range(3)] == ["TASK-001", "TASK-002", "TASK-003"]
    assert await new_task(builder, second) == "TASK-001"
    task = await call(builder, "GET", f"/apps/{first}/tasks/TASK-002", role="viewer")
    assert (task["components"], task["workflow"], task["order"], task["imported_from"]) == ([], [], [], None)


async def test_a_deleted_task_number_is_not_reused(stack):
    _, builder = stack
    app_id = await new_app(builder)
    await new_task(builder, app_id)
    await call(builder, "DELETE", f"/apps/{app_id}/tasks/TASK-001", 204)
    assert await new_task(builder, app_id) == "TASK-002"
    await call(builder, "DELETE", f"/apps/{app_id}/tasks/TASK-001", 404)


async def test_a_task_can_be_renamed(stack):
    _, builder = stack
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id, "before")
    assert (await call(builder, "PATCH", f"/apps/{app_id}/tasks/{task_id}", json={"name": "after"}))["name"] == "after"
    assert [t["name"] for t in await call(builder, "GET", f"/apps/{app_id}/tasks")] == ["after"]


async def test_placing_copies_image_type_and_defaults_from_the_library_and_keeps_its_id(stack):
    library, builder = stack
    registered = await register(library, type="data_loader", params={"shards": 4, "seed": 1},
                                image={"registry": "registry.avatar.io/data-loader", "tag": "1.0"},
                                resources={"gpu_type": "V100", "gpu_count": 1, "memory": "32GB"})
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    task = await place(builder, app_id, task_id, registered["component_id"], params={"seed": 7})
    placed = task["components"][0]
    assert placed == {"component_id": registered["component_id"], "name": registered["name"], "type": "data_loader",
                      "image": {"registry": "registry.avatar.io/data-loader", "tag": "1.0"},
                      "resources": {"gpu_type": "V100", "gpu_count": 1, "memory": "32GB"},
                      "params": {"shards": 4, "seed": 7}, "order": 1, "library_version": "1.0.0",
                      "exceeds_threshold": False}


async def test_placement_overrides_name_image_and_single_resource_fields(stack):
    library, builder = stack
    (cid,) = await components(library, 1)
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    task = await place(builder, app_id, task_id, cid, name="agent", image={"registry": "r.io/mine", "tag": "2"},
                       resources={"gpu_count": 4})
    placed = task["components"][0]
    assert (placed["name"], placed["image"], placed["resources"], placed["exceeds_threshold"]) == (
        "agent", {"registry": "r.io/mine", "tag": "2"}, {"gpu_type": "A100", "gpu_count": 4, "memory": "64GB"}, True)


async def test_each_component_reports_whether_it_exceeds_the_threshold(stack):
    library, builder = stack
    small, big_memory = await components(library, 2)
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    await place(builder, app_id, task_id, small, resources={"gpu_count": 3, "memory": "127GB"})
    task = await place(builder, app_id, task_id, big_memory, resources={"memory": "128GB"})
    assert [c["exceeds_threshold"] for c in task["components"]] == [False, True]
    task = await call(builder, "PATCH", f"/apps/{app_id}/tasks/{task_id}/components/{small}",
                      json={"resources": {"gpu_count": 4}})
    assert [c["exceeds_threshold"] for c in task["components"]] == [True, True]


async def test_placing_an_unknown_library_component_is_refused_clearly(stack):
    _, builder = stack
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    answer = await place(builder, app_id, task_id, "CL-REF-999", expect=422)
    assert answer["detail"]["code"] == "unknown_component"
    assert "CL-REF-999" in answer["detail"]["message"]


async def test_bad_resources_are_refused_and_nothing_is_written(stack):
    library, builder = stack
    (cid,) = await components(library, 1)
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    bad_memory = await place(builder, app_id, task_id, cid, expect=422, resources={"memory": "lots"})
    assert "invalid memory value 'lots'" in str(bad_memory["detail"])
    negative = await place(builder, app_id, task_id, cid, expect=422, resources={"gpu_count": -1})
    assert "greater than or equal to 0" in str(negative["detail"])
    assert (await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}"))["components"] == []


async def test_a_library_component_is_placed_once_per_task(stack):
    library, builder = stack
    (cid,) = await components(library, 1)
    app_id = await new_app(builder)
    first, second = await new_task(builder, app_id), await new_task(builder, app_id)
    await place(builder, app_id, first, cid)
    answer = await place(builder, app_id, first, cid, expect=409)
    assert answer["detail"]["code"] == "already_placed"
    await place(builder, app_id, second, cid)


async def test_unknown_task_or_component_is_404_naming_it(stack):
    library, builder = stack
    (cid,) = await components(library, 1)
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    assert (await place(builder, app_id, "TASK-404", cid, expect=404))["detail"] == \
        f"task TASK-404 not found in app {app_id}"
    answer = await call(builder, "PATCH", f"/apps/{app_id}/tasks/{task_id}/components/{cid}", 404, json={"name": "x"})
    assert answer["detail"] == f"component {cid} is not placed in task {task_id}"


async def test_edge_refusals_carry_a_code_and_the_exact_korean_message(stack):
    library, builder = stack
    app_id, task_id, (a, b, c) = await task_with(library, builder, 3, edges=[(0, 1), (1, 2)])
    refusals = [await connect(builder, app_id, task_id, x, y, expect=422) for x, y in [(a, a), (a, b), (c, a)]]
    assert [r["detail"] for r in refusals] == [
        {"code": "self_loop", "message": "자기 자신으로의 연결은 허용되지 않습니다"},
        {"code": "duplicate", "message": "이미 존재하는 연결입니다"},
        {"code": "cycle", "message": CYCLE},
    ]
    task = await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}")
    assert task["workflow"] == [{"from": a, "to": b}, {"from": b, "to": c}]


async def test_an_edge_to_a_component_outside_the_task_is_404(stack):
    library, builder = stack
    a, b = await components(library, 2)
    app_id = await new_app(builder)
    task_id, other = await new_task(builder, app_id), await new_task(builder, app_id)
    await place(builder, app_id, task_id, a)
    await place(builder, app_id, other, b)
    answer = await connect(builder, app_id, task_id, a, b, expect=404)
    assert answer["detail"] == f"component {b} is not placed in task {task_id}"


async def test_deleting_a_component_removes_its_edges_and_recomputes_the_order(stack):
    library, builder = stack
    app_id, task_id, (a, b, c, d) = await task_with(library, builder, 4, edges=[(0, 1), (1, 2), (0, 2), (2, 3)])
    task = await call(builder, "DELETE", f"/apps/{app_id}/tasks/{task_id}/components/{b}")
    assert task["workflow"] == [{"from": a, "to": c}, {"from": c, "to": d}]
    assert [(x["component_id"], x["order"]) for x in task["components"]] == [(a, 1), (c, 2), (d, 3)]
    assert await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}") == task


async def test_an_edge_against_the_order_moves_the_order_and_a_conflicting_order_is_refused(stack):
    library, builder = stack
    app_id, task_id, (a, b, c) = await task_with(library, builder, 3)
    assert (await connect(builder, app_id, task_id, c, a))["order"] == [b, c, a]
    answer = await call(builder, "PUT", f"/apps/{app_id}/tasks/{task_id}/order", 422, json={"order": [a, b, c]})
    assert answer["detail"]["code"] == "order_conflicts_workflow"
    assert answer["detail"]["edge"] == {"from": c, "to": a}
    task = await call(builder, "PUT", f"/apps/{app_id}/tasks/{task_id}/order", json={"order": [c, b, a]})
    assert [(x["component_id"], x["order"]) for x in task["components"]] == [(c, 1), (b, 2), (a, 3)]
    incomplete = await call(builder, "PUT", f"/apps/{app_id}/tasks/{task_id}/order", 422, json={"order": [c, a]})
    assert incomplete["detail"]["code"] == "order_incomplete" and b in incomplete["detail"]["message"]


async def test_an_edge_can_be_removed(stack):
    library, builder = stack
    app_id, task_id, (a, b) = await task_with(library, builder, 2, edges=[(0, 1)])
    url = f"/apps/{app_id}/tasks/{task_id}/edges"
    assert (await call(builder, "DELETE", url, params={"from": a, "to": b}))["workflow"] == []
    answer = await call(builder, "DELETE", url, 404, params={"from": a, "to": b})
    assert answer["detail"] == f"edge {a} → {b} not found in task {task_id}"
    await connect(builder, app_id, task_id, b, a)


async def test_crossing_edges_sent_at_once_cannot_close_a_cycle(stack):
    library, builder = stack
    app_id, task_id, (a, b) = await task_with(library, builder, 2)
    url = f"/apps/{app_id}/tasks/{task_id}/edges"
    answers = await asyncio.gather(*(builder.client.post(url, json={"from": x, "to": y}, headers=builder.headers())
                                     for x, y in [(a, b), (b, a)] * 3))
    assert sorted(r.status_code for r in answers) == [201] + [422] * 5
    assert len((await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}"))["workflow"]) == 1


async def test_deleting_a_task_removes_its_components_and_edges(stack):
    library, builder = stack
    app_id, task_id, _ = await task_with(library, builder, 2, edges=[(0, 1)])
    await call(builder, "DELETE", f"/apps/{app_id}/tasks/{task_id}", 204)
    app = await call(builder, "GET", f"/apps/{app_id}")
    assert app["tasks"] == []


async def test_the_diagram_is_svg_with_one_arrow_per_edge(stack):
    library, builder = stack
    loader, trainer, evaluator = [(await register(library, type=kind))["component_id"]
                                  for kind in ("data_loader", "trainer", "evaluator")]
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    for cid in (loader, trainer, evaluator):
        await place(builder, app_id, task_id, cid)
    await connect(builder, app_id, task_id, loader, trainer)
    await connect(builder, app_id, task_id, trainer, evaluator)
    response = await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}/diagram.svg", role="viewer")
    assert response.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(response.text)
    arrows = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("marker-end") == "url(#arrow)"]
    assert len(arrows) == 2
    await call(builder, "GET", f"/apps/{app_id}/tasks/TASK-404/diagram.svg", 404)
