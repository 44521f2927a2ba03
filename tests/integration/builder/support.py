"""Short verbs for builder tests: each returns the parsed answer and checks the status it expects."""
from __future__ import annotations

from typing import Any

from tests.support.services import RunningService


async def call(svc: RunningService, method: str, url: str, expect: int = 200, role: str = "researcher",
               **kwargs: Any) -> Any:
    response = await svc.client.request(method, url, headers=svc.headers(role), **kwargs)
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
