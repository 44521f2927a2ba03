"""Model aliases (docs/spec.md §14.2, hot swap): atomic moves behind an optional verification gate, rollback, history.

Moves and rollbacks are commands (handlers.py), made only by the App's owner or an admin (the owner as the
builder announced it: app.spec_created, app.owner_changed); the reads are queries on the pool."""
from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Path, Request

from services.kit.auth import Reader, Writer
from services.kit.errors import NotFound
from services.kit.service import MessageBusDep
from services.models import commands, store
from services.models.domain import ALIAS_PATTERN, AliasMoved
from services.models.schemas import AliasMove, AliasView, AppAliases

router = APIRouter(tags=["aliases"])
AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN, description="e.g. production, staging")]


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.platform.pool


Pool = Annotated[asyncpg.Pool, Depends(_pool)]


@router.put("/apps/{app_id}/aliases/{alias}", response_model=AliasMoved,
            summary="Point an alias at a model, atomically and behind an optional verification gate",
            responses={403: {"description": "not the App's owner nor an admin (the refusal names the owner)"},
                       404: {"description": "unknown model"}, 409: {"description": "gate failed, model not "
                       "stored, model of another App, or the alias moved meanwhile"}})
async def move_alias(app_id: str, alias: AliasName, move: AliasMove, bus: MessageBusDep,
                     principal: Writer) -> AliasMoved:
    return await bus.handle(commands.MoveAlias(app_id=app_id, alias=alias, model_id=move.model_id, by=principal.user,
                                               gate=move.gate, expected_model_id=move.expected_model_id,
                                               role=principal.role))


@router.post("/apps/{app_id}/aliases/{alias}/rollback", response_model=AliasMoved,
             summary="Return an alias to the model it pointed at before its latest move",
             responses={403: {"description": "not the App's owner nor an admin (the refusal names the owner)"},
                        404: {"description": "unknown alias"}, 409: {"description": "nothing to roll back to"}})
async def rollback_alias(app_id: str, alias: AliasName, bus: MessageBusDep, principal: Writer) -> AliasMoved:
    return await bus.handle(commands.RollBackAlias(app_id=app_id, alias=alias, by=principal.user,
                                                   role=principal.role))


@router.get("/apps/{app_id}/aliases", response_model=AppAliases, summary="An App's aliases with their move history")
async def list_aliases(app_id: str, pool: Pool, _: Reader) -> AppAliases:
    return AppAliases(app_id=app_id, aliases=[AliasView(**a) for a in await store.list_aliases(pool, app_id)])


@router.get("/apps/{app_id}/aliases/{alias}", response_model=AliasView, summary="Where one alias points, with history")
async def get_alias(app_id: str, alias: AliasName, pool: Pool, _: Reader) -> AliasView:
    found = await store.list_aliases(pool, app_id, alias)
    if not found:
        raise NotFound(f"alias {alias} of app {app_id} not found")
    return AliasView(**found[0])
