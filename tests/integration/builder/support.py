"""Short verbs for builder tests: each returns the parsed answer and checks the status it expects."""
from __future__ import annotations

from typing import Any

from tests.integration.library.support import register
from tests.support.services import RunningService


async def call(svc: RunningService, method: str, url: str, expect: int = 200, role: str = "researcher",
               user: str | None = None, **kwargs: Any) -> Any:
    response = await svc.client.request(method, url, headers=svc.headers(role, user), **kwargs)
    assert response.status_code == expect, f"{method} {url}: {response.status_code} {response.text}"
    return response.json() if response.content and "json" in response.headers.get("content-type", "") else response


async def new_app(builder: RunningService, name: str = "RL-DesignOpt-v1", **fields: Any) -> str:
    return (await call(builder, "POST", "/apps", 201, json={"name": name, **fields}))["app_id"]


async def new_task(builder: RunningService, app_id: str, name: str = "parameter-optimization") -> str:
    return (await call(builder, "POST", f"/apps/{app_id}/tasks", 201, json={"name": name}))["task_id"]


async def place(builder: RunningService, app_id: str, task_id: str, component_id: str, expect: int = 201,
                **fields: Any) -> Any:
    return await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/components", expect,
                      json={"component_id": component_id, **fields})


async def connect(builder: RunningService, app_id: str, task_id: str, source: str, target: str,
                  expect: int = 201) -> Any:
    return await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/edges", expect,
                      json={"from": source, "to": target})


async def task_with(library: RunningService, builder: RunningService, count: int,
                    edges: list[tuple[int, int]] = (), name: str = "RL-DesignOpt-v1") -> tuple[str, str, list[str]]:
    """A new App with one Task holding `count` new library components, connected by index pairs."""
    ids = [(await register(library))["component_id"] for _ in range(count)]
    app_id = await new_app(builder, name)
    task_id = await new_task(builder, app_id)
    for cid in ids:
        await place(builder, app_id, task_id, cid)
    for source, target in edges:
        await connect(builder, app_id, task_id, ids[source], ids[target])
    return app_id, task_id, ids


async def ready_app(library: RunningService, builder: RunningService, name: str = "spec-app") -> str:
    """An App with one Task and one Component: enough for a spec."""
    app_id, _, _ = await task_with(library, builder, 1, name=name)
    return app_id
