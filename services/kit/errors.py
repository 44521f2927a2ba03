"""Domain refusals and their HTTP form, so pure domain code never imports FastAPI.

A domain raises `NotFound("app APP-1 not found")`, `Conflict(...)` or `Invalid(..., code=...)`;
`install(app)` turns them into `{"detail": ...}` responses: a plain message for 404, and
`{"code", "message", ...extra}` for refusals a client may want to tell apart.

It also turns a server the request needs being away (PostgreSQL, Redis, RabbitMQ, S3) into a 503 with
`Retry-After` naming that server, whichever route met it: the client driver's own connection errors are
recognised here once, so no route has to catch them.
"""
from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import aiormq.exceptions
import asyncpg
import redis.exceptions
import urllib3.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.kit import metrics
from services.kit.settings import Settings

log = logging.getLogger(__name__)


class DomainError(Exception):
    status = 422
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra

    def detail(self) -> str | dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class Invalid(DomainError):
    """The request is well-formed but breaks a rule (422)."""


class NotFound(DomainError):
    status = 404
    default_code = "not_found"

    def detail(self) -> str:
        return self.message


class Forbidden(DomainError):
    """The caller may not do this to this object (403): the message says who may."""

    status = 403
    default_code = "forbidden"

    def detail(self) -> str:
        return self.message


class Conflict(DomainError):
    """The request clashes with the current state (409)."""

    status = 409
    default_code = "conflict"


class Unavailable(DomainError):
    """A dependency the request needs does not answer (503)."""

    status = 503
    default_code = "unavailable"


# What a client and the metric call each server, and how a message names it.
DEPENDENCIES = {"postgresql": "PostgreSQL", "redis": "Redis", "rabbitmq": "RabbitMQ", "s3": "the object store (S3)"}


class DependencyUnavailable(Unavailable):
    """A server the request needs is away (503 with Retry-After): raise it where code already knows which."""

    default_code = "dependency_unavailable"

    def __init__(self, dependency: str, message: str | None = None) -> None:
        if dependency not in DEPENDENCIES:
            raise ValueError(f"unknown dependency {dependency!r}: one of {', '.join(DEPENDENCIES)}")
        super().__init__(message or f"{DEPENDENCIES[dependency]} is not answering; try again shortly",
                         dependency=dependency)
        self.dependency = dependency


async def _respond(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    # a 503 is worth retrying (e.g. the library the builder asks did not answer): say when
    headers = {"Retry-After": str(_settings(request).dependency_retry_after_seconds)} if exc.status == 503 else None
    return JSONResponse({"detail": exc.detail()}, status_code=exc.status, headers=headers)


def _settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or Settings.model_construct()  # an app without: the defaults


# PostgreSQL text and jsonb cannot hold U+0000; such input is the client's to fix, not a server fault.
_UNSTORABLE_TEXT = (asyncpg.exceptions.UntranslatableCharacterError, asyncpg.exceptions.CharacterNotInRepertoireError)


async def _unstorable_text(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": {"code": "invalid_text", "message": "text may not contain NUL (\\u0000) "
                                    f"characters: {exc}"}}, status_code=422)


# The client drivers' errors that mean "the server is away", not "the request is wrong". asyncpg's 57P0x
# are a server shutting down, restarting or starting (pg_terminate_backend included), not a query timeout.
_AWAY: dict[str, tuple[type[BaseException], ...]] = {
    "postgresql": (asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.CannotConnectNowError,
                   asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
                   asyncpg.exceptions.TooManyConnectionsError),
    "redis": (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
    "rabbitmq": (aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError),
    "s3": (urllib3.exceptions.MaxRetryError, urllib3.exceptions.NewConnectionError,
           urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError),
}
# A bare OSError or TimeoutError (a refused connect, a reset, asyncpg's pool acquire timing out) says
# nothing of its server: the client library it came through does, found in the traceback's frames.
_LIBRARIES = {"asyncpg": "postgresql", "redis": "redis", "aiormq": "rabbitmq", "aio_pika": "rabbitmq",
              "pamqp": "rabbitmq", "urllib3": "s3", "minio": "s3"}


def dependency_away(exc: BaseException) -> str | None:
    """Which server's absence `exc` reports ("postgresql", "redis", "rabbitmq", "s3"), or None when it is
    not a dependency being away (a bug or a refusal, which keeps its own answer)."""
    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    for dependency, errors in _AWAY.items():
        if isinstance(exc, errors):
            return dependency
    if isinstance(exc, asyncpg.exceptions.InterfaceError) and str(exc) == "connection is closed":
        return "postgresql"  # a connection the server cut, used before the pool noticed
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return "postgresql"  # the same, caught between the server's FATAL (pg_terminate_backend) and the close
    if isinstance(exc, OSError):  # TimeoutError and ConnectionError included
        return _library_of(exc.__traceback__)
    return None


def _library_of(tb: TracebackType | None) -> str | None:
    """The dependency of the innermost client library the traceback passed through."""
    found = None
    while tb is not None:
        library = _LIBRARIES.get(tb.tb_frame.f_globals.get("__name__", "").partition(".")[0])
        found = library or found
        tb = tb.tb_next
    return found


async def _dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
    dependency = dependency_away(exc)
    if dependency is None:
        raise exc  # not an outage: the server's error handling answers 500 and logs it
    settings = _settings(request)
    retry_after = settings.dependency_retry_after_seconds
    if isinstance(exc, DependencyUnavailable):
        message = exc.message
    else:
        message = (f"{settings.service or 'the service'} cannot answer now: {DEPENDENCIES[dependency]} is not "
                   f"answering ({type(exc).__name__}); try again in {retry_after} s")
    metrics.DEPENDENCY_UNAVAILABLE.labels(settings.service or "unknown", dependency).inc()
    log.warning("%s %s answered 503: %s is away (%s: %s)", request.method, request.url.path, dependency,
                type(exc).__name__, exc)
    return JSONResponse({"detail": {"code": DependencyUnavailable.default_code, "message": message,
                                    "dependency": dependency}},
                        status_code=503, headers={"Retry-After": str(retry_after)})


def install(app: FastAPI) -> FastAPI:
    app.add_exception_handler(DomainError, _respond)
    for error in _UNSTORABLE_TEXT:
        app.add_exception_handler(error, _unstorable_text)
    for error in (DependencyUnavailable, OSError, asyncpg.exceptions.InterfaceError,
                  asyncpg.exceptions.InternalClientError, *(error for errors in _AWAY.values() for error in errors)):
        app.add_exception_handler(error, _dependency_unavailable)
    return app
