import re

from contracts.spec import AppSpec
from tests.integration.builder.support import call, connect, new_app, new_task, place, ready_app
from tests.integration.library.support import library_and_builder, register, watching
from tests.support.infra import wait_until
from tests.unit.contracts.test_spec import seed_example


def normalised(spec: dict) -> dict:
    """Ids, timestamps and the library versions placed (the seed's example predates them) aside: every
    APP-/CL-REF- id becomes a placeholder by first appearance."""
    text, names = AppSpec.model_validate(spec).model_dump_json(by_alias=True), {}
    for found in re.findall(r"(?:APP|CL-REF)-[0-9A-Z]+", text):
        names.setdefault(found, f"ID{len(names)}")
    text = re.sub(r"(?:APP|CL-REF)-[0-9A-Z]+", lambda m: names[m.group(0)], text)
    data = AppSpec.model_validate_json(text).to_wire()
    data["created_at"] = "T"
    for task in data["tasks"]:
        for component in task["components"]:
            component.pop("library_version", None)
    return data


async def test_an_app_built_like_the_seed_example_yields_the_seed_spec(fresh):
    """docs/spec.md §2.2, built through the API the way a user would build it."""
    example = seed_example()
    async with library_and_builder(fresh.settings()) as (library, builder):
        ids = {}
        for task in example["tasks"]:
            for c in task["components"]:
                ids[c["component_id"]] = (await register(
                    library, c["name"], image=c["image"], resources=c["resources"], params=c["params"]))["component_id"]

        preprocessor = await new_app(builder, "PreProcessor-App")
        source = example["tasks"][1]
        await new_task(builder, preprocessor, source["name"])
        for c in source["components"]:
            await place(builder, preprocessor, "TASK-001", ids[c["component_id"]])

        app_id = await new_app(builder, example["name"], version=example["version"], env_vars=example["env_vars"],
                               training_config=example["training_config"], storage=example["storage"])
        own = example["tasks"][0]
        task_id = await new_task(builder, app_id, own["name"])
        for c in own["components"]:
            await place(builder, app_id, task_id, ids[c["component_id"]])
        for edge in own["workflow"]:
            await connect(builder, app_id, task_id, ids[edge["from"]], ids[edge["to"]])
        await call(builder, "POST", f"/apps/{app_id}/imports", 201, json={"app_ref": preprocessor})

        spec = await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    assert set(spec) == set(example)
    assert normalised(spec) == normalised(example)
    assert {c["library_version"] for task in spec["tasks"] for c in task["components"]} == {"1.0.0"}  # CL-05
    assert spec["version"] == "1.0.0" and spec["tasks"][1]["imported_from"] == preprocessor
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", spec["created_at"])


async def test_generating_makes_the_app_ready_and_publishes_the_full_spec(stack, infra):
    library, builder = stack
    app_id = await ready_app(library, builder)
    async with watching(builder.settings.rabbitmq_url, "app.spec_created") as seen:
        response = await builder.client.post(f"/apps/{app_id}/spec", headers=builder.headers("researcher"))
        assert response.status_code == 201
        assert response.headers["location"] == f"/apps/{app_id}/spec?version=1.0.0"
        event = await wait_until(lambda: next((e for e in seen if e["correlation_id"] == app_id), None),
                                 message="app.spec_created on the broker")
    assert event["producer"] == "builder"
    # with the App's owner: the models service lets only the owner or an admin move the App's aliases
    assert event["data"] == {"app_id": app_id, "version": "1.0.0", "spec": response.json(), "owner": "researcher-user"}
    app = await call(builder, "GET", f"/apps/{app_id}")
    assert (app["status"], app["latest_spec_version"], app["has_unpublished_changes"]) == ("ready", "1.0.0", False)


async def test_generating_again_without_changes_returns_the_same_version(stack):
    library, builder = stack
    app_id = await ready_app(library, builder)
    first = await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    again = await call(builder, "POST", f"/apps/{app_id}/spec", 200)
    assert again == first


async def test_an_edit_makes_the_next_spec_a_new_version_and_the_old_one_stays(stack):
    library, builder = stack
    app_id = await ready_app(library, builder)
    first = await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={"NCCL_DEBUG": "INFO"})
    assert (await call(builder, "GET", f"/apps/{app_id}"))["has_unpublished_changes"] is True
    second = await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    assert (second["version"], second["env_vars"]) == ("1.0.1", {"NCCL_DEBUG": "INFO"})
    await call(builder, "PATCH", f"/apps/{app_id}", json={"version": "2.0.0"})
    assert (await call(builder, "POST", f"/apps/{app_id}/spec", 201))["version"] == "2.0.0"
    assert await call(builder, "GET", f"/apps/{app_id}/spec", params={"version": "1.0.0"}) == first
    assert (await call(builder, "GET", f"/apps/{app_id}/spec", role="viewer"))["version"] == "2.0.0"


async def test_an_app_that_cannot_run_is_refused_with_every_problem(stack):
    library, builder = stack
    empty = await new_app(builder)
    answer = await call(builder, "POST", f"/apps/{empty}/spec", 422)
    assert answer["detail"]["problems"] == [f"app {empty} has no tasks"]
    app_id = await ready_app(library, builder)
    await new_task(builder, app_id, "left-empty")
    answer = await call(builder, "POST", f"/apps/{app_id}/spec", 422)
    assert answer["detail"]["code"] == "app_not_ready"
    assert answer["detail"]["problems"] == ["task TASK-002 (left-empty) has no components"]
    assert (await call(builder, "GET", f"/apps/{app_id}"))["status"] == "draft"
    await call(builder, "GET", f"/apps/{app_id}/spec", 404)


async def test_missing_spec_versions_are_404(stack):
    library, builder = stack
    app_id = await ready_app(library, builder)
    answer = await call(builder, "GET", f"/apps/{app_id}/spec", 404)
    assert "has no spec yet" in answer["detail"]
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    answer = await call(builder, "GET", f"/apps/{app_id}/spec", 404, params={"version": "9.9.9"})
    assert answer["detail"] == f"app {app_id} has no spec version 9.9.9"


async def test_spec_list_summarises_counts_and_the_largest_component(stack):
    library, builder = stack
    small = (await register(library, resources={"gpu_type": "V100", "gpu_count": 1, "memory": "16GB"}))["component_id"]
    big = (await register(library, resources={"gpu_type": "A100", "gpu_count": 4, "memory": "128GB"}))["component_id"]
    app_id = await new_app(builder, "summarised")
    first, second = await new_task(builder, app_id), await new_task(builder, app_id)
    await place(builder, app_id, first, small)
    await place(builder, app_id, first, big)
    await place(builder, app_id, second, small)
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    await call(builder, "PATCH", f"/apps/{app_id}", json={"description": "v2"})
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)

    listed = await call(builder, "GET", "/specs", params={"app_id": app_id}, role="viewer")
    assert [s["version"] for s in listed["items"]] == ["1.0.1", "1.0.0"] and listed["total"] == 2
    summary = listed["items"][0]
    assert (summary["task_count"], summary["component_count"], summary["needs_approval"]) == (2, 3, True)
    assert summary["largest_component"] == {"component_id": big, "name": summary["largest_component"]["name"],
                                            "resources": {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB"}}
    latest = await call(builder, "GET", "/specs", params={"app_id": app_id, "latest": True})
    assert [s["version"] for s in latest["items"]] == ["1.0.1"]
