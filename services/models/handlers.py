"""The models service's handlers: one small function per command and per consumed event.

The event consumers (workload.completed; app.spec_created and app.owner_changed, which tell who owns an
App) through the message bus, the alias routes (alias_api.py) and the
store worker (worker.py) all come here; each handler loads what it changes through its unit of work,
lets the domain decide, and commits: the commit publishes what the model or the alias recorded.
"""
from __future__ import annotations

import logging

from contracts.events import AppOwnerChanged, AppSpecCreated, Event, WorkloadCompleted
from services.kit import metrics as kit_metrics
from services.kit.audit import record_decision
from services.kit.errors import NotFound
from services.kit.inbox import lock_per_workload
from services.kit.messaging import PermanentError
from services.models import commands, metrics, store
from services.models.domain import AliasMoved, GateFailed, Model, check_may_move_alias, model_of
from services.models.unit_of_work import ModelsUnitOfWork

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- events

async def record_completed_workload(event: Event, uow: ModelsUnitOfWork) -> None:
    """workload.completed → a pending model under the App's next version; a store worker copies it
    once this commits (the copy is not part of the consumer's transaction)."""
    completed: WorkloadCompleted = event.data
    try:
        model = model_of(completed)
    except ValueError as exc:  # such an event can never be stored
        raise PermanentError(str(exc)) from exc
    async with uow:
        version = await uow.models.add(model)
        if version is None:  # the same completion re-published under a new event id
            log.info("workload %s already has a model", completed.workload_id)
            return
        uow.wake(store.NOTIFY_CHANNEL)  # this process's worker, or another's
        await uow.commit()
    log.info("workload %s completed: model %s (%s v%d) pending storage", completed.workload_id, model.model_id,
             model.app_id, version)


async def remember_spec_owner(event: Event, uow: ModelsUnitOfWork) -> None:
    """app.spec_created → the App's owner when its spec was generated (who may move its aliases)."""
    created: AppSpecCreated = event.data
    async with uow:
        await uow.owners.remember(created.app_id, created.owner, event.occurred_at)
        await uow.commit()


async def remember_new_owner(event: Event, uow: ModelsUnitOfWork) -> None:
    """app.owner_changed → an admin gave the App to another owner: from now on they move its aliases."""
    changed: AppOwnerChanged = event.data
    async with uow:
        await uow.owners.remember(changed.app_id, changed.owner, event.occurred_at)
        await uow.commit()
    log.info("app %s now belongs to %r (was %r)", changed.app_id, changed.owner, changed.previous)


# ---------------------------------------------------------------------- the store worker

async def mark_model_stored(command: commands.MarkModelStored, uow: ModelsUnitOfWork) -> Model | None:
    """pending → stored with the totals of its verified files, announced with model.stored; None (and
    nothing announced) when the worker lost its lease to another replica."""
    async with uow:
        model = await uow.models.leased(command.model_id, command.owner)
        if model is None:
            log.warning("model %s was taken over by another replica; not announcing it", command.model_id)
            return None
        model.mark_stored()
        await uow.models.save(model)
        await uow.commit()
        metrics.STORED.inc()  # counted once the commit is through
        kit_metrics.WORKLOADS.labels("models", "model.stored").inc()
    log.info("stored model %s (%s v%s): %d files, %d bytes", model.model_id, model.app_id, model.version,
             model.file_count, model.size_bytes)
    return model


async def record_store_failure(command: commands.RecordStoreFailure, uow: ModelsUnitOfWork) -> Model | None:
    """Count the failed attempt and schedule the next (the model stays pending); the first failure of
    an outage is announced with model.store_failed. None when the worker lost its lease."""
    async with uow:
        model = await uow.models.leased(command.model_id, command.owner)
        if model is None:
            return None
        model.attempt_failed(command.reason, command.retry_in)
        await uow.models.save(model)
        await uow.commit()
    return model


# ---------------------------------------------------------------------- aliases (people)

def _record_move(uow: ModelsUnitOfWork, change: AliasMoved, role: str | None, *,
                 gate: dict | None = None) -> None:
    record_decision(uow, action=f"models.alias_{change.action}", actor=change.moved_by, actor_role=role,
                    target_type="model_alias", target_id=f"{change.app_id}/{change.alias}",
                    correlation_id=change.app_id, before={"model_id": change.previous_model_id},
                    after={"model_id": change.model_id, "version": change.version,
                           **({"gate": gate, "gate_observed": change.gate_observed} if gate else {})})


async def move_alias(command: commands.MoveAlias, uow: ModelsUnitOfWork) -> AliasMoved:
    try:
        async with uow:
            check_may_move_alias(command.app_id, await uow.owners.get(command.app_id), command.by, command.role)
            alias = await uow.aliases.get(command.app_id, command.alias)
            target = await uow.models.target(command.model_id)
            if target is None:
                raise NotFound(f"model {command.model_id} not found")
            change = alias.move_to(target, by=command.by, gate=command.gate,
                                   expected_model_id=command.expected_model_id)
            if change.changed:
                await uow.aliases.save(alias)
                _record_move(uow, change, command.role,
                             gate=command.gate.model_dump(mode="json", exclude_none=True) if command.gate else None)
            await uow.commit()
    except GateFailed:
        metrics.ALIAS_MOVES.labels("move", "refused").inc()
        raise
    metrics.ALIAS_MOVES.labels("move", "moved" if change.changed else "unchanged").inc()
    return change


async def roll_back_alias(command: commands.RollBackAlias, uow: ModelsUnitOfWork) -> AliasMoved:
    async with uow:
        check_may_move_alias(command.app_id, await uow.owners.get(command.app_id), command.by, command.role)
        alias = await uow.aliases.get(command.app_id, command.alias, undoable=True)
        if alias.model_id is None:
            raise NotFound(f"alias {command.alias} of app {command.app_id} not found")
        target = await uow.models.target(alias.rollback_target())
        change = alias.roll_back(target, by=command.by)  # models are never deleted: the target exists
        await uow.aliases.save(alias)
        _record_move(uow, change, command.role)
        await uow.commit()
    metrics.ALIAS_MOVES.labels("rollback", "moved").inc()
    return change


COMMANDS = {
    commands.MoveAlias: move_alias,
    commands.RollBackAlias: roll_back_alias,
    commands.MarkModelStored: mark_model_stored,
    commands.RecordStoreFailure: record_store_failure,
}
EVENTS = {"workload.completed": record_completed_workload, "app.spec_created": remember_spec_owner,
          "app.owner_changed": remember_new_owner}
# one workload's model is recorded once: its completions queue up on this lock from their inbox claim on
LOCKS = {"workload.completed": lock_per_workload(store.WORKLOAD_LOCK)}
