"""Only an App's owner or an admin changes it; everyone with a role reads it (seed 002, AU-01)."""
import pytest

from services.kit.auth import mint_token
from tests.integration.builder.support import call
from tests.integration.library.support import register, watching
from tests.support.infra import wait_until

ANA, BEN = "ana", "ben"


async def owned_app(library, builder, owner: str = ANA) -> tuple[str, str, list[str]]:
    """An App of `owner` with one Task holding two connected components."""
    ids = [(await register(library))["component_id"] for _ in range(2)]
    app_id = (await call(builder, "POST", "/apps", 201, user=owner, json={"name": "owned"}))["app_id"]
    task_id = (await call(builder, "POST", f"/apps/{app_id}/tasks", 201, user=owner, json={"name": "t"}))["task_id"]
    for cid in ids:
        await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/components", 201, user=owner,
                   json={"component_id": cid})
    await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/edges", 201, user=owner,
               json={"from": ids[0], "to": ids[1]})
    return app_id, task_id, ids


def changes(app_id: str, task_id: str, ids: list[str], spare: str, source: str,
            ) -> list[tuple[str, str, dict | None, dict]]:
    """Every change of the App, its Task and its placed components (`source`: an App with a Task, to
    import): (method, url, json, params)."""
    task, comp = f"/apps/{app_id}/tasks/{task_id}", f"/apps/{app_id}/tasks/{task_id}/components/{ids[0]}"
    return [("PATCH", f"/apps/{app_id}", {"name": "taken"}, {}),
            ("PUT", f"/apps/{app_id}/env-vars", {"A": "1"}, {}),
            ("PUT", f"/apps/{app_id}/training-config", {"episodes": 5}, {}),
            ("POST", f"/apps/{app_id}/spec", None, {}),
            ("POST", f"/apps/{app_id}/tasks", {"name": "more"}, {}),
            ("PATCH", task, {"name": "renamed"}, {}),
            ("POST", f"{task}/components", {"component_id": spare}, {}),
            ("PATCH", comp, {"params": {"lr": 9}, "image": {"registry": "evil.io/x", "tag": "1"}}, {}),
            ("PUT", f"{task}/order", {"order": [ids[0], ids[1], spare]}, {}),
            ("DELETE", f"{task}/edges", None, {"from": ids[0], "to": ids[1]}),
            ("POST", f"{task}/edges", {"from": ids[0], "to": ids[1]}, {}),
            ("POST", f"{comp}/upgrade", None, {}),
            ("POST", f"/apps/{app_id}/imports", {"app_ref": source}, {}),
            ("DELETE", f"/apps/{app_id}/imports/{source}", None, {}),
            ("DELETE", comp, None, {}),
            ("DELETE", task, None, {}),
            ("DELETE", f"/apps/{app_id}", None, {})]


async def test_another_researcher_gets_403_naming_the_owner_for_every_change_and_nothing_changes(stack):
    library, builder = stack
    app_id, task_id, ids = await owned_app(library, builder)
    spare = (await register(library))["component_id"]
    source, _, _ = await owned_app(library, builder, BEN)
    before = await call(builder, "GET", f"/apps/{app_id}", user=BEN)
    before_tasks = await call(builder, "GET", f"/apps/{app_id}/tasks", user=BEN)
    for method, url, body, params in changes(app_id, task_id, ids, spare, source):
        response = await builder.client.request(method, url, json=body, params=params,
                                                headers=builder.headers("researcher", BEN))
        assert response.status_code == 403, f"{method} {url}: {response.status_code} {response.text}"
        assert response.json()["detail"] == f"app {app_id} belongs to 'ana'; only its owner or an admin may change it"
    assert await call(builder, "GET", f"/apps/{app_id}", role="viewer") == before
    assert await call(builder, "GET", f"/apps/{app_id}/tasks", role="viewer") == before_tasks


async def test_the_owner_and_an_admin_change_and_delete_it(stack):
    library, builder = stack
    app_id, task_id, ids = await owned_app(library, builder)
    spare = (await register(library))["component_id"]
    source, _, _ = await owned_app(library, builder, BEN)
    for method, url, body, params in changes(app_id, task_id, ids, spare, source)[:7]:
        response = await builder.client.request(method, url, json=body, params=params,
                                                headers=builder.headers("researcher", ANA))
        assert response.status_code < 300, f"{method} {url}: {response.status_code} {response.text}"
    for method, url, body, params in changes(app_id, task_id, ids, spare, source)[7:]:
        response = await builder.client.request(method, url, json=body, params=params,
                                                headers=builder.headers("admin", "root"))
        assert response.status_code < 300, f"{method} {url}: {response.status_code} {response.text}"
    assert (await builder.client.get(f"/apps/{app_id}", headers=builder.headers("viewer"))).status_code == 404


async def test_a_spec_carries_the_apps_owner_when_it_was_generated(stack):
    library, builder = stack
    app_id, _, _ = await owned_app(library, builder)
    async with watching(builder.settings.rabbitmq_url, "app.spec_created") as seen:
        await call(builder, "POST", f"/apps/{app_id}/spec", 201, user=ANA)
        await call(builder, "PUT", f"/apps/{app_id}/owner", role="admin", json={"owner": BEN})
        await call(builder, "PATCH", f"/apps/{app_id}", user=BEN, json={"description": "ben's now"})
        await call(builder, "POST", f"/apps/{app_id}/spec", 201, user=BEN)
        await wait_until(lambda: len([e for e in seen if e["correlation_id"] == app_id]) == 2,
                         message="two app.spec_created on the broker")
    assert sorted((e["data"]["version"], e["data"]["owner"]) for e in seen if e["correlation_id"] == app_id) == [
        ("1.0.0", ANA), ("1.0.1", BEN)]


async def test_an_app_shows_its_owner_and_owner_me_lists_only_mine(stack):
    library, builder = stack
    mine = (await call(builder, "POST", "/apps", 201, user="cho", json={"name": "cho's"}))["app_id"]
    theirs = (await call(builder, "POST", "/apps", 201, user="dan", json={"name": "dan's"}))["app_id"]
    assert (await call(builder, "GET", f"/apps/{mine}", role="viewer"))["owner"] == "cho"
    listed = await call(builder, "GET", "/apps", user="cho", params={"owner": "me"})
    assert [a["app_id"] for a in listed["items"]] == [mine] and listed["items"][0]["owner"] == "cho"
    assert listed["total"] == 1
    by_name = await call(builder, "GET", "/apps", role="viewer", params={"owner": "dan"})
    assert [a["app_id"] for a in by_name["items"]] == [theirs]
    everyone = await call(builder, "GET", "/apps", role="viewer", params={"page_size": 100})
    assert {mine, theirs} <= {a["app_id"] for a in everyone["items"]}
    await call(builder, "GET", "/apps", 422, params={"owner": " "})


async def test_an_admin_transfers_an_app_and_nobody_else_may(stack):
    library, builder = stack
    app_id = (await call(builder, "POST", "/apps", 201, user=ANA, json={"name": "moving"}))["app_id"]
    refused = await call(builder, "PUT", f"/apps/{app_id}/owner", 403, user=ANA, json={"owner": BEN})
    assert refused["detail"] == "role 'researcher' may not do this; requires admin"

    async with watching(builder.settings.rabbitmq_url, "app.owner_changed") as seen:
        moved = await call(builder, "PUT", f"/apps/{app_id}/owner", role="admin", json={"owner": BEN})
        assert moved["owner"] == BEN and moved["has_unpublished_changes"] is True
        # the models service learns of it: from now on Ben (or an admin) moves the App's aliases
        event = await wait_until(lambda: next((e for e in seen if e["correlation_id"] == app_id), None),
                                 message="app.owner_changed on the broker")
        again = await call(builder, "PUT", f"/apps/{app_id}/owner", role="admin", json={"owner": BEN})
        assert again["owner"] == BEN
    assert (event["producer"], event["data"]) == (
        "builder", {"app_id": app_id, "owner": BEN, "previous": ANA, "changed_by": "admin-user"})
    await call(builder, "PATCH", f"/apps/{app_id}", user=BEN, json={"description": "ben's now"})
    refused = await call(builder, "PATCH", f"/apps/{app_id}", 403, user=ANA, json={"description": "mine"})
    assert "belongs to 'ben'" in refused["detail"]
    async with builder.platform.pool.acquire() as conn:
        trail = await conn.fetch("SELECT from_owner, to_owner, transferred_by FROM owner_transfers WHERE app_id = $1",
                                 app_id)
    assert [tuple(r) for r in trail] == [(ANA, BEN, "admin-user")]
    assert [e["data"]["owner"] for e in seen if e["correlation_id"] == app_id] == [BEN]  # giving it to Ben again: none
    await call(builder, "PUT", "/apps/APP-000000/owner", 404, role="admin", json={"owner": BEN})
    await call(builder, "PUT", f"/apps/{app_id}/owner", 422, role="admin", json={"owner": ""})


async def test_two_subjects_that_differ_after_128_characters_are_two_users(stack):
    _, builder = stack
    first, second = "x" * 130 + "-first", "x" * 130 + "-second"
    app_id = (await call(builder, "POST", "/apps", 201, user=first, json={"name": "long"}))["app_id"]
    app = await call(builder, "PATCH", f"/apps/{app_id}", user=first, json={"description": "mine"})
    assert app["owner"] == app["created_by"] == first
    await call(builder, "PATCH", f"/apps/{app_id}", 403, user=second, json={"description": "also mine?"})
    assert (await call(builder, "GET", "/apps", user=second, params={"owner": "me"}))["items"] == []


@pytest.mark.parametrize("sub", ["", "   "])
async def test_a_token_with_an_empty_or_blank_subject_is_401(stack, sub):
    _, builder = stack
    token = mint_token(builder.settings, sub, "admin")
    response = await builder.client.post("/apps", json={"name": "nobody's"},
                                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "subject (sub) is empty" in response.json()["detail"]
