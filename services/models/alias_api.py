"""Model aliases (seed 003 hot swap): atomic moves behind an optional verification gate, rollback, history."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from contracts.events import ModelAliasMoved
from services.kit.auth import Reader, Writer
from services.kit.errors import Conflict, NotFound
from services.kit.outbox import Outbox
from services.models import metrics, store
from services.models.domain import ALIAS_PATTERN, Gate, evaluate_gate

router = APIRouter(tags=["aliases"])
AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN, description="e.g. production, staging")]


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.platform.pool


async def _outbox(request: Request) -> Outbox:
    return request.app.state.platform.outbox


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Events = Annotated[Outbox, Depends(_outbox)]


class AliasMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=64)
    gate: Gate | None = Field(default=None, description="refuse the move unless the model's metric meets it")
    expected_model_id: str | None = Field(default=None, max_length=64,
                                          description="move only if the alias still points here (compare-and-set)")


class AliasMoved(BaseModel):
    app_id: str
    alias: str
    model_id: str
    version: int
    previous_model_id: str | None
    changed: bool
    action: str
    gate_observed: float | None = None
    moved_by: str


class AliasView(BaseModel):
    alias: str
    model_id: str
    version: int
    name: str
    moved_at: datetime
    moved_by: str
    history: list[dict[str, Any]]


class AppAliases(BaseModel):
    app_id: str
    aliases: list[AliasView]


async def _announce(outbox: Outbox, conn: asyncpg.Connection, moved: AliasMoved, sequence: int) -> None:
    await outbox.emit(conn, "model.alias_moved", ModelAliasMoved(
        app_id=moved.app_id, alias=moved.alias, model_id=moved.model_id, version=moved.version,
        previous_model_id=moved.previous_model_id, action=moved.action, moved_by=moved.moved_by,
        sequence=sequence), correlation_id=moved.app_id)


@router.put("/apps/{app_id}/aliases/{alias}", response_model=AliasMoved,
            summary="Point an alias at a model, atomically and behind an optional verification gate",
            responses={404: {"description": "unknown model"}, 409: {"description": "gate failed, model not "
                       "stored, model of another App, or the alias moved meanwhile"}})
async def move_alias(app_id: str, alias: AliasName, move: AliasMove, pool: Pool, outbox: Events,
                     principal: Writer) -> AliasMoved:
    async with pool.acquire() as conn, conn.transaction():
        current = await store.lock_alias(conn, app_id, alias)
        current_id = current["model_id"] if current else None
        model = await store.model_for_alias(conn, move.model_id)
        if model is None:
            raise NotFound(f"model {move.model_id} not found")
        if model["app_id"] != app_id:
            raise Conflict(f"model {move.model_id} belongs to app {model['app_id']}, not {app_id}", code="other_app")
        if model["status"] != "stored":
            raise Conflict(f"model {move.model_id} is not stored yet; only a stored model can be promoted",
                           code="not_stored")
        if move.expected_model_id is not None and move.expected_model_id != current_id:
            raise Conflict(f"alias {alias} points at {current_id or 'nothing'}, not {move.expected_model_id}: "
                           "it moved meanwhile; reload and retry", code="alias_moved", current_model_id=current_id)
        observed = None
        if move.gate is not None:
            outcome = evaluate_gate(move.model_id, model["metrics"], move.gate)
            if not outcome.passed:
                metrics.ALIAS_MOVES.labels("move", "refused").inc()
                raise Conflict(f"{outcome.message}; alias {alias} still points at {current_id or 'nothing'}",
                               code="gate_failed", gate=move.gate.model_dump(), observed=outcome.observed)
            observed = outcome.observed
        moved = AliasMoved(app_id=app_id, alias=alias, model_id=move.model_id, version=model["version"],
                           previous_model_id=current_id, changed=current_id != move.model_id, action="move",
                           gate_observed=observed, moved_by=principal.user)
        if moved.changed:
            row = await store.point_alias(conn, app_id=app_id, alias=alias, from_model_id=current_id,
                                          to_model_id=move.model_id, action="move", by=principal.user,
                                          gate=move.gate.model_dump() if move.gate else None, observed=observed)
            await _announce(outbox, conn, moved, row["id"])
    metrics.ALIAS_MOVES.labels("move", "moved" if moved.changed else "unchanged").inc()
    return moved


@router.post("/apps/{app_id}/aliases/{alias}/rollback", response_model=AliasMoved,
             summary="Return an alias to the model it pointed at before its latest move",
             responses={404: {"description": "unknown alias"}, 409: {"description": "nothing to roll back to"}})
async def rollback_alias(app_id: str, alias: AliasName, pool: Pool, outbox: Events,
                         principal: Writer) -> AliasMoved:
    async with pool.acquire() as conn, conn.transaction():
        current = await store.lock_alias(conn, app_id, alias)
        if current is None:
            raise NotFound(f"alias {alias} of app {app_id} not found")
        last = await store.last_undoable_move(conn, app_id, alias)
        if last is None or last["from_model_id"] is None:
            raise Conflict(f"alias {alias} of app {app_id} has no earlier model to roll back to",
                           code="nothing_to_roll_back")
        target = await store.model_for_alias(conn, last["from_model_id"])
        await store.mark_undone(conn, last["id"])
        row = await store.point_alias(conn, app_id=app_id, alias=alias, from_model_id=current["model_id"],
                                      to_model_id=target["model_id"], action="rollback", by=principal.user)
        moved = AliasMoved(app_id=app_id, alias=alias, model_id=target["model_id"], version=target["version"],
                           previous_model_id=current["model_id"], changed=True, action="rollback",
                           moved_by=principal.user)
        await _announce(outbox, conn, moved, row["id"])
    metrics.ALIAS_MOVES.labels("rollback", "moved").inc()
    return moved


@router.get("/apps/{app_id}/aliases", response_model=AppAliases, summary="An App's aliases with their move history")
async def list_aliases(app_id: str, pool: Pool, _: Reader) -> AppAliases:
    return AppAliases(app_id=app_id, aliases=[AliasView(**a) for a in await store.list_aliases(pool, app_id)])


@router.get("/apps/{app_id}/aliases/{alias}", response_model=AliasView, summary="Where one alias points, with history")
async def get_alias(app_id: str, alias: AliasName, pool: Pool, _: Reader) -> AliasView:
    found = await store.list_aliases(pool, app_id, alias)
    if not found:
        raise NotFound(f"alias {alias} of app {app_id} not found")
    return AliasView(**found[0])
