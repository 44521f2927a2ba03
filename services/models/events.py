"""workload.completed → a pending model, recorded in the handler's transaction (the copy happens later)."""
from __future__ import annotations

import logging

from contracts.events import Event, WorkloadCompleted
from services.kit.messaging import HandlerContext, PermanentError
from services.models import store
from services.models.domain import merge_metrics, model_name_prefix, new_model_id, plan_artifacts

log = logging.getLogger(__name__)


async def on_workload_completed(event: Event, ctx: HandlerContext) -> None:
    completed: WorkloadCompleted = event.data
    if completed.workload.workload_id != completed.workload_id:
        raise PermanentError(f"workload.completed for {completed.workload_id} carries workload "
                             f"{completed.workload.workload_id}")
    try:
        artifacts = plan_artifacts(completed.artifacts)
    except ValueError as exc:
        raise PermanentError(f"workload {completed.workload_id} lists an unusable artifact location: {exc}") from exc
    workload = completed.workload
    metrics = merge_metrics({a.folder: source.metrics for a, source in zip(artifacts, completed.artifacts)})
    model_id = new_model_id()
    version = await store.insert_pending(
        ctx.conn, model_id=model_id, workload_id=completed.workload_id, app_id=workload.app_id,
        app_name=workload.spec.name, name_prefix=model_name_prefix(workload.spec.name),
        workload=workload.to_wire(), artifacts=artifacts, metrics=metrics)
    if version is None:  # the same completion re-published under a new event id
        log.info("workload %s already has a model", completed.workload_id)
        return
    ctx.outbox.wakeups.after_commit(ctx.conn, store.NOTIFY_CHANNEL)  # a store worker takes it from here
    log.info("workload %s completed: model %s (%s v%d) pending storage", completed.workload_id, model_id,
             workload.app_id, version)
