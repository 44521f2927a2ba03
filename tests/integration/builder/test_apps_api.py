import re

from tests.integration.builder.support import call, new_app, ready_app


async def test_a_new_app_is_a_draft_with_the_tr03_training_defaults(stack):
    _, builder = stack
    response = await builder.client.post("/apps", json={"name": "RL-DesignOpt-v1"}, headers=builder.headers("researcher"))
    assert response.status_code == 201
    app = response.json()
    assert re.fullmatch(r"APP-[0-9A-F]{6}", app["app_id"])
    assert response.headers["location"] == f"/apps/{app['app_id']}"
    assert (app["status"], app["version"], app["tasks"], app["imported_apps"]) == ("draft", "1.0.0", [], [])
    assert app["training_config"] == {"episodes": 1000, "learning_rate": 0.001, "batch_size": 64, "gamma": 0.99,
                                      "max_steps_per_episode": 500, "reward_params": {}, "env_config": {}}
    assert app["storage"] == {"type": "distributed", "path": "/training-data/rl-designopt-v1"}
    assert app["created_by"] == "researcher-user"


async def test_an_unknown_app_is_404_naming_it(stack):
    _, builder = stack
    for method, url in [("GET", "/apps/APP-000000"), ("PATCH", "/apps/APP-000000"), ("DELETE", "/apps/APP-000000"),
                        ("GET", "/apps/APP-000000/tasks/TASK-001"), ("POST", "/apps/APP-000000/spec")]:
        answer = await call(builder, method, url, 404, **({"json": {}} if method == "PATCH" else {}))
        assert answer == {"detail": "app APP-000000 not found"}, (method, url)


async def test_list_apps_filters_by_status_and_pages(stack):
    library, builder = stack
    ready = await ready_app(library, builder, "listed-ready")
    await call(builder, "POST", f"/apps/{ready}/spec", 201)
    draft = await new_app(builder, "listed-draft")

    drafts = await call(builder, "GET", "/apps", params={"status": "draft", "page_size": 100}, role="viewer")
    readies = await call(builder, "GET", "/apps", params={"status": "ready", "page_size": 100}, role="viewer")
    assert draft in {a["app_id"] for a in drafts["items"]} and ready not in {a["app_id"] for a in drafts["items"]}
    listed = next(a for a in readies["items"] if a["app_id"] == ready)
    assert (listed["task_count"], listed["component_count"], listed["latest_spec_version"]) == (1, 1, "1.0.0")
    first = await call(builder, "GET", "/apps", params={"page": 1, "page_size": 1})
    assert len(first["items"]) == 1 and first["total"] >= 2
    await call(builder, "GET", "/apps", 422, params={"status": "archived"})


async def test_patch_changes_only_what_is_given_and_null_clears_the_test_run_ref(stack):
    _, builder = stack
    app_id = await new_app(builder, "patched")
    app = await call(builder, "PATCH", f"/apps/{app_id}", json={"test_run_ref": "RUN-1", "version": "2.0.0",
                                                               "storage": {"type": "ceph", "path": "/d"}})
    assert (app["name"], app["version"], app["test_run_ref"], app["storage"]) == (
        "patched", "2.0.0", "RUN-1", {"type": "ceph", "path": "/d"})
    app = await call(builder, "PATCH", f"/apps/{app_id}", json={"test_run_ref": None, "name": "renamed"})
    assert (app["name"], app["test_run_ref"], app["version"]) == ("renamed", None, "2.0.0")


async def test_patch_refuses_unknown_fields_and_bad_versions(stack):
    _, builder = stack
    app_id = await new_app(builder)
    await call(builder, "PATCH", f"/apps/{app_id}", 422, json={"status": "ready"})
    await call(builder, "PATCH", f"/apps/{app_id}", 422, json={"version": "v2"})


async def test_env_vars_are_replaced_as_a_whole(stack):
    _, builder = stack
    app_id = await new_app(builder)
    await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={"NCCL_DEBUG": "INFO", "OLD": "1"})
    app = await call(builder, "PUT", f"/apps/{app_id}/env-vars",
                     json={"NCCL_DEBUG": "WARN", "CUDA_VISIBLE_DEVICES": "all"})
    assert app["env_vars"] == {"NCCL_DEBUG": "WARN", "CUDA_VISIBLE_DEVICES": "all"}


async def test_env_var_names_must_be_shell_names(stack):
    _, builder = stack
    app_id = await new_app(builder)
    answer = await call(builder, "PUT", f"/apps/{app_id}/env-vars", 422, json={"1BAD-NAME": "x"})
    assert "1BAD-NAME" in str(answer["detail"])
    assert (await call(builder, "GET", f"/apps/{app_id}"))["env_vars"] == {}


async def test_training_config_takes_defaults_for_what_is_omitted(stack):
    _, builder = stack
    app_id = await new_app(builder)
    app = await call(builder, "PUT", f"/apps/{app_id}/training-config",
                     json={"episodes": 50, "reward_params": {"safety_weight": 0.4}})
    assert app["training_config"] == {"episodes": 50, "learning_rate": 0.001, "batch_size": 64, "gamma": 0.99,
                                      "max_steps_per_episode": 500, "reward_params": {"safety_weight": 0.4},
                                      "env_config": {}}
    await call(builder, "PUT", f"/apps/{app_id}/training-config", 422, json={"gamma": 1.5})
    await call(builder, "PUT", f"/apps/{app_id}/training-config", 422, json={"episodes": 10, "epochs": 3})


async def test_deleting_an_app_removes_the_working_copy_but_keeps_its_specs(stack):
    library, builder = stack
    app_id = await ready_app(library, builder, "to-delete")
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    await call(builder, "DELETE", f"/apps/{app_id}", 204)
    await call(builder, "GET", f"/apps/{app_id}", 404)
    assert (await call(builder, "GET", f"/apps/{app_id}/spec", params={"version": "1.0.0"}))["app_id"] == app_id
    await call(builder, "DELETE", f"/apps/{app_id}", 404)


async def test_text_postgres_cannot_store_is_refused_not_a_server_error(stack):
    _, builder = stack
    answer = await call(builder, "POST", "/apps", 422, json={"name": "nul\u0000name"})
    assert answer["detail"]["code"] == "invalid_text"
    app_id = await new_app(builder)
    answer = await call(builder, "PUT", f"/apps/{app_id}/training-config", 422, json={"env_config": {"\u0000": 1}})
    assert answer["detail"]["code"] == "invalid_text"
