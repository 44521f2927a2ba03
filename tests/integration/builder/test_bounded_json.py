"""Free-form JSON (env_config, reward_params, params) is bounded at the edge: a value nested too deep or
too large is 422 naming the field, and nothing is stored (the App still reads back 200)."""
from __future__ import annotations

from contracts.bounded_json import MAX_BYTES, MAX_DEPTH
from tests.integration.builder.support import call, new_app, new_task, place
from tests.integration.library.support import component_body, register
from tests.unit.kit.test_bounded_json import nested


async def app_names(builder) -> set[str]:
    listed = await call(builder, "GET", "/apps", params={"page_size": 100})
    return {item["name"] for item in listed["items"]}


async def test_an_env_config_300_levels_deep_is_refused_and_nothing_is_stored(stack):
    _, builder = stack
    answer = await call(builder, "POST", "/apps", 422,
                        json={"name": "too-deep", "training_config": {"env_config": nested(300)}})
    [error] = answer["detail"]
    assert error["type"] == "json_too_deep" and error["loc"][:3] == ["body", "training_config", "env_config"]
    assert "training_config.env_config" in error["msg"]
    assert "too-deep" not in await app_names(builder)

    app_id = await new_app(builder, "deep-config-target")
    answer = await call(builder, "PUT", f"/apps/{app_id}/training-config", 422, json={"env_config": nested(300)})
    assert answer["detail"][0]["loc"][:2] == ["body", "env_config"]
    app = await call(builder, "GET", f"/apps/{app_id}")
    assert app["training_config"]["env_config"] == {}


async def test_a_free_form_field_holds_32_levels_and_no_more(stack):
    _, builder = stack
    app_id = await new_app(builder, "bounded-config")
    for field in ("env_config", "reward_params"):
        answer = await call(builder, "PUT", f"/apps/{app_id}/training-config", 422,
                            json={field: nested(MAX_DEPTH + 1)})
        [error] = answer["detail"]
        assert (error["type"], error["loc"]) == ("json_too_deep", ["body", field]), error
        assert f"deeper than {MAX_DEPTH} levels" in error["msg"]
    large = await call(builder, "PUT", f"/apps/{app_id}/training-config", 422,
                       json={"env_config": {"blob": "x" * MAX_BYTES}})
    assert (large["detail"][0]["type"], large["detail"][0]["loc"]) == ("json_too_large", ["body", "env_config"])
    assert (await call(builder, "GET", f"/apps/{app_id}"))["training_config"]["env_config"] == {}
    await call(builder, "PUT", f"/apps/{app_id}/training-config", json={"env_config": nested(MAX_DEPTH)})
    assert (await call(builder, "GET", f"/apps/{app_id}"))["training_config"]["env_config"] == nested(MAX_DEPTH)
    spec = await call(builder, "POST", f"/apps/{app_id}/spec", 422)  # no task yet: refused, but not a 500
    assert spec["detail"]


async def test_component_params_are_bounded_in_the_library_and_in_a_placement(stack):
    library, builder = stack
    deep = await library.client.post("/components", json=component_body(params=nested(MAX_DEPTH + 1)),
                                     headers=library.headers("researcher"))
    large = await library.client.post("/components", json=component_body(params={"blob": "x" * MAX_BYTES}),
                                      headers=library.headers("researcher"))
    assert deep.status_code == large.status_code == 422, (deep.text, large.text)
    assert (deep.json()["detail"][0]["type"], deep.json()["detail"][0]["loc"]) == ("json_too_deep", ["body", "params"])
    assert (large.json()["detail"][0]["type"], large.json()["detail"][0]["loc"]) == ("json_too_large",
                                                                                     ["body", "params"])

    component_id = (await register(library))["component_id"]
    app_id = await new_app(builder, "bounded-params")
    task_id = await new_task(builder, app_id)
    answer = await place(builder, app_id, task_id, component_id, 422, params=nested(MAX_DEPTH + 1))
    assert answer["detail"][0]["loc"] == ["body", "params"]
    await place(builder, app_id, task_id, component_id)
    url = f"/apps/{app_id}/tasks/{task_id}/components/{component_id}"
    answer = await call(builder, "PATCH", url, 422, json={"params": {"blob": "x" * MAX_BYTES}})
    assert answer["detail"][0]["type"] == "json_too_large"
    task = await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}")
    assert [c["params"] for c in task["components"]] == [{}]


async def test_library_search_takes_percent_and_underscore_literally(stack):
    library, _ = stack
    await register(library, "50%_off")
    await register(library, "50xyoff")
    found = await library.client.get("/components", params={"q": "50%_"}, headers=library.headers("viewer"))
    assert [item["name"] for item in found.json()["items"]] == ["50%_off"]
