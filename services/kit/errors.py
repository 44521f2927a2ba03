"""Domain refusals and their HTTP form, so pure domain code never imports FastAPI.

A domain raises `NotFound("app APP-1 not found")`, `Conflict(...)` or `Invalid(..., code=...)`;
`install(app)` turns them into `{"detail": ...}` responses: a plain message for 404, and
`{"code", "message", ...extra}` for refusals a client may want to tell apart.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


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


async def _respond(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse({"detail": exc.detail()}, status_code=exc.status)


# PostgreSQL text and jsonb cannot hold U+0000; such input is the client's to fix, not a server fault.
_UNSTORABLE_TEXT = (asyncpg.exceptions.UntranslatableCharacterError, asyncpg.exceptions.CharacterNotInRepertoireError)


async def _unstorable_text(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": {"code": "invalid_text", "message": "text may not contain NUL (\\u0000) "
                                    f"characters: {exc}"}}, status_code=422)


def install(app: FastAPI) -> FastAPI:
    app.add_exception_handler(DomainError, _respond)
    for error in _UNSTORABLE_TEXT:
        app.add_exception_handler(error, _unstorable_text)
    return app
