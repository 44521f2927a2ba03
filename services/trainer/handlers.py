"""The trainer's handlers: submitting and cancelling requests, and the consumers of the ready-apps read
model and of every workload's saga timeline."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Sequence

from contracts.events import AppDeleted, AppSpecCreated, Event
from contracts.spec import AppSpec, SecretRef
from contracts.topology import SAGA_EVENTS
from contracts.workload import WireTrainingConfig, Workload
from services.kit import metrics, secrets
from services.kit.audit import record_decision
from services.kit.errors import Invalid, NotFound
from services.kit.inbox import lock_per_workload
from services.kit.secrets import SecretCipher
from services.trainer import domain, store
from services.trainer.commands import CancelTrainingRequest, SubmitTrainingRequest
from services.trainer.unit_of_work import TrainerUnitOfWork

log = logging.getLogger(__name__)
SERVICE = "trainer"


# ---------------------------------------------------------------------- commands

async def submit_training_request(command: SubmitTrainingRequest, uow: TrainerUnitOfWork,
                                  cipher: SecretCipher | None = None) -> Workload:
    """Build the workload and store the request with its `training.requested` in one statement (the
    platform's hot path); Invalid when the App is not ready at the version asked for. A request's own
    secret env vars are stored (encrypted, audited) first, under its workload id; the workload names them."""
    plan = secrets.plan_env(command.env_vars)
    if plan.kept:
        raise Invalid(f"secret env var {', '.join(sorted(plan.kept))} of the request has no value",
                      code="env_no_value")
    async with uow.statement():
        for fresh in (False, True):  # the cached spec went stale meanwhile: once more from a fresh read
            spec = await uow.apps.ready_spec(command.app_id, command.spec_version, fresh=fresh)
            if spec is None:
                break
            secret_refs: dict[str, SecretRef] = {}
            # stored ahead of the request's own statement, each version 1 (a retry finds them there); a
            # request its guard then refuses leaves values that no workload names
            if plan.new_values:
                secret_refs = secrets.refs(SERVICE, command.workload_id, await uow.secrets.apply(
                    plan, cipher, owner=command.workload_id, by=command.requester, version=1))
            submission = _submission(command, spec, plan.plain, secret_refs)
            request = domain.TrainingRequest.submit(submission, workload_id=command.workload_id,
                                                    submitted_at=datetime.now(timezone.utc))
            if await uow.commit_guarded(uow.requests.add(request, command.spec_version)):
                metrics.WORKLOADS.labels(SERVICE, "submitted").inc()
                return request.workload
    what = f"version {command.spec_version} of app {command.app_id}" if command.spec_version else f"app {command.app_id}"
    raise Invalid(f"{what} is not a ready app: generate its spec in the builder first", code="app_not_ready")


def _submission(command: SubmitTrainingRequest, spec: AppSpec, env_vars: dict[str, str],
                secret_env_vars: dict[str, SecretRef]) -> domain.Submission:
    config = domain.merge_training_config(WireTrainingConfig.from_spec(spec.training_config),
                                          dict(command.training_config), command.simulation_seed)
    return domain.Submission(
        spec=spec, requester=command.requester, training_config=config, env_vars=env_vars,
        secret_env_vars=secret_env_vars,
        resources=command.resources, priority=command.priority, name=command.name,
        is_training_request=command.is_training_request, test_run_ref=command.test_run_ref)


async def cancel_training_request(command: CancelTrainingRequest, uow: TrainerUnitOfWork) -> domain.TrainingRequest:
    """Publish one `workload.cancel_requested` however often it is asked; the request as it now stands."""
    # the caller's own trace is linked to the span that continues the workload's trace
    async with uow, uow.continue_trace("trainer cancel", command.workload_id):
        request = await uow.requests.get(command.workload_id)
        if request is None:
            raise NotFound(f"training request {command.workload_id} not found")
        status = request.status
        if request.request_cancel(command.requested_by, admin=command.by_admin):
            await uow.requests.save_cancel_request(request)
            record_decision(uow, action="trainer.cancel_request", actor=command.requested_by,
                            actor_role=command.role, target_type="workload", target_id=request.workload_id,
                            before={"status": status, "cancel_requested_by": None},
                            after={"status": request.status, "cancel_requested_by": command.requested_by})
        await uow.commit()
    return request


# ---------------------------------------------------------------------- events

async def add_ready_spec(event: Event, uow: TrainerUnitOfWork) -> None:
    data: AppSpecCreated = event.data  # type: ignore[assignment]
    async with uow:
        await uow.apps.add_spec(data.spec)
        await uow.commit()


async def mark_app_deleted(event: Event, uow: TrainerUnitOfWork) -> None:
    data: AppDeleted = event.data  # type: ignore[assignment]
    async with uow:
        await uow.apps.mark_deleted(data.app_id)
        await uow.commit()


async def add_to_timeline(event: Event, uow: TrainerUnitOfWork) -> None:
    """Append the event to its workload's timeline and fold it into the request's status.

    Runs holding the workload's timeline lock, taken with the inbox claim (LOCKS)."""
    async with uow:
        await _add_to_timeline(event, uow)
        await uow.commit()


async def add_to_timelines(events: Sequence[Event], uow: TrainerUnitOfWork) -> None:
    """`add_to_timeline` for the events of one delivered batch: the first event of each workload appended
    and folded in one statement, the rest in turn after it (a workload's events fold in order)."""
    together: list[tuple[Event, domain.TimelineEntry]] = []
    after: list[Event] = []
    workloads: set[str] = set()
    for event in events:
        workload_id = event.data.workload_id  # type: ignore[attr-defined]
        if workload_id in workloads or _published_elsewhere(event):
            after.append(event)
        else:
            together.append((event, domain.timeline_entry(event)))
        workloads.add(workload_id)
    async with uow:
        if together:
            appended = await uow.timelines.append([
                (event.data.workload_id, entry, domain.transitions(entry))  # type: ignore[attr-defined]
                for event, entry in together])
            for (event, entry), result in zip(together, appended):
                await _folded(uow, event, entry, result)
        for event in after:
            await _add_to_timeline(event, uow)
        await uow.commit()


def _published_elsewhere(event: Event) -> bool:
    return event.type == "training.requested" and event.producer != SERVICE


async def _add_to_timeline(event: Event, uow: TrainerUnitOfWork) -> None:
    if _published_elsewhere(event):
        await _receive_outside_request(event, uow)
        return
    workload_id: str = event.data.workload_id  # type: ignore[attr-defined]
    entry = domain.timeline_entry(event)
    [appended] = await uow.timelines.append([(workload_id, entry, domain.transitions(entry))])
    await _folded(uow, event, entry, appended)


async def _folded(uow: TrainerUnitOfWork, event: Event, entry: domain.TimelineEntry,
                  appended: store.Appended) -> None:
    """What follows an append: re-derive the status when the event could not simply be folded in, and
    time the saga step it ends."""
    workload_id: str = event.data.workload_id  # type: ignore[attr-defined]
    if not appended.known or not appended.added:
        return  # the request is not known yet (it is folded when recorded), or the event was seen before
    previous = appended.previous
    if not appended.folded:  # events before this one arrived first, or this one is late
        entries = await uow.timelines.entries(workload_id)
        await uow.timelines.set_status(workload_id, domain.derive_status(entries),
                                       max((item.occurred_at for item in entries), default=None))
        # the step it ends began at the latest entry before it, even when later ones arrived first
        previous = max((item.occurred_at for item in entries
                        if item.event_id != entry.event_id and item.occurred_at <= entry.occurred_at), default=None)
    if appended.added and previous is not None and entry.occurred_at >= previous:
        metrics.SAGA_STEP_SECONDS.labels(entry.type).observe((entry.occurred_at - previous).total_seconds())


async def _receive_outside_request(event: Event, uow: TrainerUnitOfWork) -> None:
    """The trainer is the gate for requests other systems publish (its timeline consumer sees them all):
    recorded with their timeline either way, and only an accepted one goes on to approval, as the
    trainer's own `training.requested` (approval acts on no other). A refused one ends at once."""
    outside: Workload = event.data  # type: ignore[assignment]
    spec = await uow.apps.ready_spec(outside.app_id, outside.spec_version, fresh=True)
    request = domain.TrainingRequest.receive(outside, producer=event.producer, spec=spec, cause=event)
    if not await uow.requests.add_published(request, source=event.producer):
        # the workload id is taken (by a request of ours, or another outside one): never touch its timeline
        log.warning("training request %s published by %s ignored: its workload id is already known",
                    outside.workload_id, event.producer)
        metrics.WORKLOADS.labels(SERVICE, "outside_duplicate").inc()
        return
    entries = [domain.timeline_entry(event)]
    if request.refusal is not None:
        entries.append(request.refusal_entry(event, datetime.now(timezone.utc)))
    for entry in entries:  # a workload's entries are appended one at a time (store.append)
        await uow.timelines.append([(outside.workload_id, entry, domain.transitions(entry))])
    timeline = await uow.timelines.entries(outside.workload_id)  # events about it may have come first
    await uow.timelines.set_status(outside.workload_id, domain.derive_status(timeline),
                                   max((item.occurred_at for item in timeline), default=None))
    outcome = "outside_refused" if request.refusal is not None else "submitted"
    metrics.WORKLOADS.labels(SERVICE, outcome).inc()
    log.info("training request %s published by %s: %s", outside.workload_id, event.producer,
             f"refused: {request.refusal}" if request.refusal else "accepted")


COMMANDS = {
    SubmitTrainingRequest: submit_training_request,
    CancelTrainingRequest: cancel_training_request,
}
EVENTS = {
    "app.spec_created": add_ready_spec,
    "app.deleted": mark_app_deleted,
    **{event_type: add_to_timeline for event_type in SAGA_EVENTS},
}
_PER_WORKLOAD = lock_per_workload(store.WORKLOAD_LOCK)  # a workload's timeline changes one event at a time
LOCKS = {event_type: _PER_WORKLOAD for event_type in SAGA_EVENTS}
TOGETHER = {event_type: add_to_timelines for event_type in SAGA_EVENTS}
