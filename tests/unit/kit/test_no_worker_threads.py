"""Every route and every dependency of every service is a coroutine.

FastAPI runs a plain `def` endpoint or dependency in a worker thread: a thread hop (and a share of a
40-thread pool) per request for what is a few microseconds of attribute access. One such dependency on
the trainer's submit path cost a hop on every training request, so this guards all of them.
"""
from __future__ import annotations

import inspect

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.approval.main import create_app as approval_app
from services.builder.main import create_app as builder_app
from services.kit.settings import Settings
from services.library.main import create_app as library_app
from services.models.main import create_app as models_app
from services.scheduler.main import create_app as scheduler_app
from services.trainer.main import create_app as trainer_app

APPS = {"library": library_app, "builder": builder_app, "trainer": trainer_app, "approval": approval_app,
        "scheduler": scheduler_app, "models": models_app}


def _runs_on_the_loop(call: object) -> bool:
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    method = getattr(call, "__call__", None)  # a callable instance, e.g. HTTPBearer
    return not inspect.isfunction(call) and (inspect.iscoroutinefunction(method)
                                             or inspect.isasyncgenfunction(method))


def _sync_calls(dependant: Dependant, path: str) -> list[str]:
    found = []
    for dependency in dependant.dependencies:
        if dependency.call is not None and not _runs_on_the_loop(dependency.call):
            found.append(f"{path}: dependency {getattr(dependency.call, '__qualname__', dependency.call)}")
        found += _sync_calls(dependency, path)
    return found


def _api_routes(routes: list) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        included = getattr(route, "original_router", None)  # FastAPI keeps an included router whole
        if included is not None:
            found += _api_routes(included.routes)
    return found


@pytest.mark.parametrize("service", sorted(APPS))
def test_no_route_or_dependency_runs_in_a_worker_thread(service: str) -> None:
    app = APPS[service](Settings(env="local"))
    routes = _api_routes(app.routes)
    assert len(routes) > 3, f"{service} has no API routes"
    sync = []
    for route in routes:
        if not _runs_on_the_loop(route.endpoint):
            sync.append(f"{route.path}: endpoint {route.endpoint.__qualname__}")
        sync += _sync_calls(route.dependant, route.path)
    assert sync == [], f"{service} runs these in a worker thread per request: {sync}"
