import pytest

from tests.integration.builder.support import call, new_app, new_task
from tests.integration.library.support import register

WRITES = [
    ("POST", "/apps", {"name": "x"}),
    ("PATCH", "/apps/{app}", {"name": "y"}),
    ("PUT", "/apps/{app}/env-vars", {"A": "1"}),
    ("PUT", "/apps/{app}/training-config", {}),
    ("POST", "/apps/{app}/imports", {"app_ref": "APP-000000"}),
    ("POST", "/apps/{app}/spec", None),
    ("POST", "/apps/{app}/tasks", {"name": "t"}),
    ("PATCH", "/apps/{app}/tasks/TASK-001", {"name": "t"}),
    ("POST", "/apps/{app}/tasks/TASK-001/components", {"component_id": "CL-REF-001"}),
    ("POST", "/apps/{app}/tasks/TASK-001/edges", {"from": "a", "to": "b"}),
    ("PUT", "/apps/{app}/tasks/TASK-001/order", {"order": []}),
    ("DELETE", "/apps/{app}/tasks/TASK-001", None),
    ("DELETE", "/apps/{app}", None),
]
READS = ["/apps", "/apps/{app}", "/apps/{app}/tasks", "/apps/{app}/tasks/TASK-001",
         "/apps/{app}/tasks/TASK-001/diagram.svg", "/specs"]


@pytest.mark.parametrize("method,url,body", WRITES)
async def test_a_viewer_cannot_change_anything(stack, method, url, body):
    _, builder = stack
    app_id = await new_app(builder)
    await new_task(builder, app_id)
    response = await builder.client.request(method, url.format(app=app_id), json=body, headers=builder.headers("viewer"))
    assert response.status_code == 403
    assert "role 'viewer' may not do this" in response.json()["detail"]


async def test_a_viewer_reads_everything_and_no_token_reads_nothing(stack):
    _, builder = stack
    app_id = await new_app(builder)
    await new_task(builder, app_id)
    for url in READS:
        assert (await builder.client.get(url.format(app=app_id), headers=builder.headers("viewer"))).status_code == 200
        assert (await builder.client.get(url.format(app=app_id))).status_code == 401


async def test_admins_and_researchers_both_build(stack):
    library, builder = stack
    cid = (await register(library))["component_id"]
    app_id = await new_app(builder)
    task_id = await new_task(builder, app_id)
    await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/components", 201, role="admin",
               json={"component_id": cid})
    app = await call(builder, "PATCH", f"/apps/{app_id}", role="admin", json={"description": "by admin"})
    assert (app["created_by"], app["updated_by"]) == ("researcher-user", "admin-user")
