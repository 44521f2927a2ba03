"""A server a request needs being away answers 503 with Retry-After naming it, whichever driver error says
so; every other error keeps its own answer (services/kit/errors.py).

The driver errors are the real ones: each client is pointed at a loopback port nobody listens on."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import aiormq.exceptions
import asyncpg
import asyncpg.compat
import httpx
import pytest
import redis.asyncio
import urllib3
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.kit import errors, metrics
from services.kit.settings import Settings
from services.kit.stack import free_port


def app_failing(fail: Callable[[], Awaitable[None]], settings: Settings | None = None) -> FastAPI:
    app = errors.install(FastAPI())
    if settings is not None:
        app.state.settings = settings

    @app.get("/work")
    async def work() -> None:
        await fail()

    return app


async def answer(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # an unhandled error is a 500, as served
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/work")


async def postgres_refused() -> None:
    await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/avatar")  # a bare ConnectionRefusedError


async def postgres_acquire_timed_out() -> None:
    await asyncpg.compat.wait_for(asyncio.sleep(1), timeout=0.01)  # how a pool acquire times out: a bare TimeoutError


async def postgres_connection_lost() -> None:
    raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")


async def postgres_terminated() -> None:
    raise asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")


async def postgres_terminated_between_messages() -> None:
    # how asyncpg reports a pooled connection used after the server's FATAL (pg_terminate_backend) arrived but
    # before the connection was closed: seen in tests/chaos/test_availability.py
    raise asyncpg.exceptions.InternalClientError("cannot switch to state 11; another operation (2) is in progress")


async def redis_refused() -> None:
    client = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def rabbitmq_gone() -> None:
    raise aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED - broker forced connection closure")


async def s3_refused() -> None:
    http = urllib3.PoolManager(retries=urllib3.Retry(total=0))
    await asyncio.to_thread(http.request, "GET", f"http://127.0.0.1:{free_port()}/avatar-models/x")


@pytest.mark.parametrize("fail, dependency, named", [
    (postgres_refused, "postgresql", "PostgreSQL"),
    (postgres_acquire_timed_out, "postgresql", "PostgreSQL"),
    (postgres_connection_lost, "postgresql", "PostgreSQL"),
    (postgres_terminated, "postgresql", "PostgreSQL"),
    (postgres_terminated_between_messages, "postgresql", "PostgreSQL"),
    (redis_refused, "redis", "Redis"),
    (rabbitmq_gone, "rabbitmq", "RabbitMQ"),
    (s3_refused, "s3", "S3"),
])
async def test_a_dependency_away_is_a_503_naming_it_with_retry_after(fail, dependency, named):
    response = await answer(app_failing(fail, Settings(service="trainer")))
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    detail = response.json()["detail"]
    assert detail["code"] == "dependency_unavailable" and detail["dependency"] == dependency
    assert named in detail["message"] and detail["message"].startswith("trainer cannot answer now"), detail


async def test_retry_after_is_the_configured_one_and_each_answer_is_counted():
    labels = {"service": "approval", "dependency": "postgresql"}
    before = REGISTRY.get_sample_value("avatar_dependency_unavailable_total", labels) or 0
    response = await answer(app_failing(postgres_refused, Settings(service="approval",
                                                                   dependency_retry_after_seconds=12)))
    assert (response.status_code, response.headers["retry-after"]) == (503, "12")
    assert REGISTRY.get_sample_value("avatar_dependency_unavailable_total", labels) == before + 1


async def test_a_route_that_knows_the_dependency_says_so_in_its_own_words():
    async def fail() -> None:
        raise errors.DependencyUnavailable("s3", "cannot download now from S3: the object store is unreachable")

    response = await answer(app_failing(fail))  # an app without settings: the default Retry-After
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")
    assert response.json() == {"detail": {"code": "dependency_unavailable", "dependency": "s3",
                                          "message": "cannot download now from S3: the object store is unreachable"}}
    with pytest.raises(ValueError, match="unknown dependency"):
        errors.DependencyUnavailable("mysql")


async def raise_plain_os_error() -> None:
    raise FileNotFoundError("/var/lib/avatar/spool/x.log")


async def raise_bad_argument() -> None:
    raise asyncpg.exceptions._base.DataError("invalid input for query argument $1: 'closed' (expected int)")


async def raise_busy_connection() -> None:
    raise asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress")


async def raise_query_cancelled() -> None:
    raise asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")


@pytest.mark.parametrize("fail", [raise_plain_os_error, raise_bad_argument, raise_busy_connection,
                                  raise_query_cancelled])
async def test_errors_that_are_not_an_outage_keep_their_500(fail):
    response = await answer(app_failing(fail, Settings(service="trainer")))
    assert response.status_code == 500 and "retry-after" not in response.headers


def test_every_dependency_has_a_metric_series_and_a_name():
    assert set(errors.DEPENDENCIES) == set(metrics.DEPENDENCIES)


async def test_every_503_says_when_to_retry():
    async def fail() -> None:
        raise errors.Unavailable("the component library did not answer for CL-1; try again shortly")

    response = await answer(app_failing(fail, Settings(service="builder", dependency_retry_after_seconds=7)))
    assert (response.status_code, response.headers["retry-after"]) == (503, "7")
    assert response.json()["detail"]["code"] == "unavailable"
