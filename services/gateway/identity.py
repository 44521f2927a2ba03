"""Who is calling the gateway: a browser session, an API token or a platform JWT, resolved to a Caller.

`app.state.identity` (built in main.py) resolves each request once; the result sits on
`request.state.caller` for the proxy, the gateway's own routes, the rate limiter and the audit log.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from fastapi import Depends, HTTPException, Request

from services.gateway.ratelimit import address_of, counted_by_caller
from services.kit.auth import ROLES, Role

Via = Literal["session", "api_token", "jwt"]
RANK: dict[str, int] = {"viewer": 0, "researcher": 1, "admin": 2}


@dataclass(frozen=True)
class Caller:
    user: str                  # the user's id: the subject of the tokens the services see
    role: Role
    via: Via
    session_id: str | None = None  # the session's id (never its secret)
    token_id: str | None = None    # the API token's id (never its secret)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Identity(Protocol):
    async def resolve(self, request: Request) -> Caller:
        """The caller of `request`, or HTTPException 401 (no or bad credentials, deactivated user) / 403 (a
        session's state-changing request without its CSRF token)."""


def at_most(role: Role, ceiling: Role) -> Role:
    """The lower of two roles (an API token never acts above its owner's current role)."""
    return role if RANK[role] <= RANK[ceiling] else ceiling


async def current_caller(request: Request) -> Caller:
    caller = getattr(request.state, "caller", None)
    if caller is None:
        limiter = request.app.state.limiter
        try:
            caller = await request.app.state.identity.resolve(request)
        except HTTPException:
            if counted_by_caller(request.url.path, request.scope["headers"]):
                await limiter.check_address(address_of(request.scope))  # over the limit: 429, not 401
            raise
        request.state.caller = caller
        await limiter.check_user(caller.user)
    return caller


def require(*roles: Role):
    for role in roles:
        assert role in ROLES, role

    async def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if caller.role not in roles:
            raise HTTPException(403, f"role '{caller.role}' may not do this; requires {' or '.join(roles)}")
        return caller

    return dependency


AnyCaller = Annotated[Caller, Depends(current_caller)]
AdminCaller = Annotated[Caller, Depends(require("admin"))]
