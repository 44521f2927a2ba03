"""Two people editing one App: an edit made from an older revision (If-Match) is refused with 409 and the
current revision, so nobody overwrites a change they have not seen (services/builder/revision.py)."""
from tests.integration.builder.support import call, new_app, new_task, task_with

STALE = "다른 사용자가 이 App을 먼저 수정했습니다"


async def edit(svc, method: str, url: str, revision, expect: int, **kwargs):
    headers = {**svc.headers("researcher", None), **({"If-Match": revision} if revision is not None else {})}
    response = await svc.client.request(method, url, headers=headers, **kwargs)
    assert response.status_code == expect, f"{method} {url}: {response.status_code} {response.text}"
    return response.json() if response.content else None


async def test_every_answer_names_the_revision_and_each_edit_moves_it(stack):
    _, builder = stack
    app_id = await new_app(builder)
    app = await call(builder, "GET", f"/apps/{app_id}")
    task = await edit(builder, "POST", f"/apps/{app_id}/tasks", f'"{app["revision"]}"', 201, json={"name": "t"})
    assert task["revision"] == app["revision"] + 1
    read = await call(builder, "GET", f"/apps/{app_id}/tasks/{task['task_id']}", role="viewer")
    assert read["revision"] == task["revision"]
    renamed = await edit(builder, "PATCH", f"/apps/{app_id}/tasks/{task['task_id']}", f'W/"{task["revision"]}"', 200,
                         json={"name": "renamed"})
    assert renamed["revision"] == task["revision"] + 1
    assert (await call(builder, "GET", f"/apps/{app_id}"))["revision"] == renamed["revision"]


async def test_an_edit_from_an_older_revision_is_refused_with_the_current_one_and_changes_nothing(stack):
    library, builder = stack
    app_id, task_id, (a, b) = await task_with(library, builder, 2)
    seen = (await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}"))["revision"]
    # someone else connects the two components first
    theirs = await edit(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/edges", str(seen), 201,
                        json={"from": a, "to": b})
    for method, url, body in [
        ("DELETE", f"/apps/{app_id}/tasks/{task_id}/components/{a}", None),
        ("PATCH", f"/apps/{app_id}/tasks/{task_id}/components/{b}", {"resources": {"gpu_count": 8}}),
        ("PUT", f"/apps/{app_id}/tasks/{task_id}/order", {"order": [b, a]}),
        ("POST", f"/apps/{app_id}/tasks", {"name": "late"}),
        ("PUT", f"/apps/{app_id}/env-vars", {"A": "1"}),
        ("PATCH", f"/apps/{app_id}", {"name": "late"}),
        ("DELETE", f"/apps/{app_id}", None),
    ]:
        refused = await edit(builder, method, url, f'"{seen}"', 409, **({"json": body} if body is not None else {}))
        assert refused["detail"]["code"] == "edit_conflict", (method, url)
        assert refused["detail"]["message"].startswith(STALE)
        assert (refused["detail"]["revision"], refused["detail"]["expected_revision"]) == (theirs["revision"], seen)
    after = await call(builder, "GET", f"/apps/{app_id}")
    assert after["revision"] == theirs["revision"] and after["name"] == "RL-DesignOpt-v1" and after["env_vars"] == {}
    assert [c["component_id"] for c in after["tasks"][0]["components"]] == [a, b]
    # from the current revision the same edit goes through
    await edit(builder, "DELETE", f"/apps/{app_id}/tasks/{task_id}/components/{a}", f'"{theirs["revision"]}"', 200)


async def test_an_import_from_an_older_revision_is_refused(stack):
    library, builder = stack
    source, _, _ = await task_with(library, builder, 1, name="source")
    app_id = await new_app(builder)
    seen = (await call(builder, "GET", f"/apps/{app_id}"))["revision"]
    await new_task(builder, app_id)  # without If-Match: applied as before
    refused = await edit(builder, "POST", f"/apps/{app_id}/imports", str(seen), 409, json={"app_ref": source})
    assert refused["detail"]["code"] == "edit_conflict"
    assert (await call(builder, "GET", f"/apps/{app_id}"))["imported_apps"] == []


async def test_a_malformed_if_match_is_refused_and_a_star_matches_any_revision(stack):
    _, builder = stack
    app_id = await new_app(builder)
    refused = await edit(builder, "POST", f"/apps/{app_id}/tasks", "yesterday", 422, json={"name": "t"})
    assert refused["detail"]["code"] == "bad_if_match"
    await edit(builder, "POST", f"/apps/{app_id}/tasks", "*", 201, json={"name": "t"})


async def test_the_app_list_shows_each_apps_largest_component(stack):
    library, builder = stack
    app_id, task_id, (small, big) = await task_with(library, builder, 2, name="largest")
    await call(builder, "PATCH", f"/apps/{app_id}/tasks/{task_id}/components/{big}",
               json={"resources": {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB"}})
    empty = await new_app(builder, "empty")
    listed = {item["app_id"]: item for item in (await call(builder, "GET", "/apps", params={"page_size": 100}))["items"]}
    assert listed[app_id]["largest_component"]["component_id"] == big
    assert listed[app_id]["largest_component"]["resources"] == {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB"}
    assert listed[empty]["largest_component"] is None
