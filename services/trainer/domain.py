"""Trainer rules (pure): what a submission becomes, who may cancel a request, and what a workload's
timeline says about it.

The timeline is the saga's log: every event the platform published about one workload, in order.
A request's status is never stored as a fact of its own; it is derived from that log by
`derive_status`, so replaying the log always gives the same answer.
"""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from pydantic import BaseModel

from contracts.events import Event, WorkloadCancelRequested
from contracts.resources import parse_memory
from contracts.spec import AppSpec, SecretRef, SpecComponent
from contracts.workload import Priority, RequestedResources, WireTrainingConfig, Workload
from services.kit.errors import Conflict, Forbidden, Invalid
from services.kit.unit_of_work import Aggregate

DEFAULT_MAX_RUNTIME = "2h"
# The timeline entry of an outside request the trainer refused: not an event on the broker, the trainer's own
# record of why (the outside system reads it at GET /training-requests/{id}).
REFUSED = "training.refused"

# The progress a workload makes, in order; a later step never moves back to an earlier one.
PROGRESS = ("waiting", "awaiting approval", "approved", "queued", "running",
            "completed", "completed (model not stored yet)", "model stored")
# refused: an outside system's request the trainer did not accept (`TrainingRequest.receive`); nothing ran
ENDINGS = ("rejected", "failed", "cancelled", "refused")
FINAL = frozenset(ENDINGS) | {"model stored"}
STATUSES = PROGRESS + ENDINGS
STATUS_LABELS = {
    "waiting": "대기",
    "awaiting approval": "승인대기",
    "approved": "승인",
    "queued": "실행 대기열",
    "running": "실행 중",
    "completed": "완료",
    "completed (model not stored yet)": "완료 (모델 미저장)",
    "model stored": "완료 (모델 저장)",
    "rejected": "반려",
    "failed": "실패",
    "cancelled": "취소",
    "refused": "접수 거부",
}
CANCELLABLE = frozenset({"waiting", "awaiting approval", "approved", "queued", "running"})

_STATUS_OF = {
    "training.requested": "waiting",
    "approval.required": "awaiting approval",
    "looptest.requested": "awaiting approval",
    "looptest.completed": "awaiting approval",
    "looptest.passed": "awaiting approval",
    "looptest.failed": "awaiting approval",
    "workload.approved": "approved",
    "workload.queued": "queued",
    "workload.started": "running",
    "workload.completed": "completed",
    "model.store_failed": "completed (model not stored yet)",
    "model.stored": "model stored",
    "workload.rejected": "rejected",
    "workload.failed": "failed",
    "workload.cancelled": "cancelled",
    REFUSED: "refused",
}


@dataclass(frozen=True)
class TimelineEntry:
    type: str
    producer: str
    occurred_at: datetime
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""


def _status_of(entry: TimelineEntry) -> str | None:
    # the scheduler's minimum-run test uses the same run machinery: its steps are not the workload's
    if entry.type == "workload.queued" and entry.details.get("loop_test"):
        return None
    if entry.type == "workload.failed" and entry.details.get("stage") == "loop_test":
        return None
    return _STATUS_OF.get(entry.type)


def derive_status(entries: Iterable[TimelineEntry]) -> str:
    """Fold the timeline (in time order) into one status.

    Robust to late or re-ordered delivery: progress only moves forward, an ending (rejected,
    failed, cancelled) overrides progress, and nothing moves a final status (an ending or
    "model stored"). A failed model store after a successful one therefore changes nothing.
    """
    status = "waiting"
    for entry in entries:
        status = step(status, entry)
    return status


def step(status: str, entry: TimelineEntry) -> str:
    """The status after one more entry, as late as or later than every entry `status` was folded from."""
    candidate = _status_of(entry)
    if candidate is None or status in FINAL:
        return status
    if candidate in ENDINGS or PROGRESS.index(candidate) > PROGRESS.index(status):
        return candidate
    return status


def transitions(entry: TimelineEntry) -> dict[str, str]:
    """`step(status, entry)` for every status it changes: the store applies it to the status it finds,
    so a workload's latest event updates its status without reading its timeline."""
    return {status: after for status in STATUSES if (after := step(status, entry)) != status}


@dataclass(frozen=True)
class Progress:
    status: str
    loop_test: dict[str, Any] | None
    final_metrics: dict[str, Any]
    model: dict[str, Any] | None
    outcome: str | None
    cancel_requested: bool


def summarise(entries: list[TimelineEntry]) -> Progress:
    """What the detail view shows beside the timeline: status, latest loop test, metrics, model."""
    loop_test = metrics = model = None
    cancel_requested = False
    outcomes: dict[str, str] = {}  # status → the summary of the event that led to it
    for entry in entries:
        details = entry.details
        if entry.type in ("approval.required", "looptest.passed", "looptest.failed"):
            loop_test = details.get("loop_test")
        elif entry.type == "looptest.requested":
            loop_test = {"status": "running", "episodes": details.get("episodes"), "results": None,
                         "executedBy": details.get("requested_by"), "executedAt": None}
        elif entry.type == "workload.completed":
            metrics = final_metrics(details.get("artifacts", []))
        elif entry.type == "model.stored":
            model = {key: details.get(key) for key in ("model_id", "version", "size_bytes", "files")}
        elif entry.type == "workload.cancel_requested":
            cancel_requested = True
        if (status := _status_of(entry)) in ENDINGS or status == "completed (model not stored yet)":
            outcomes[status] = entry.summary
    status = derive_status(entries)
    return Progress(status, loop_test, metrics or {}, model, outcomes.get(status), cancel_requested)


def final_metrics(artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    """Each component's metrics.json, flattened to `<component name>.<metric>` (TR-08 compares these)."""
    flat: dict[str, Any] = {}
    for artifact in artifacts:
        for key, value in (artifact.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[f"{artifact.get('name') or artifact.get('component_id')}.{key}"] = value
    return flat


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def timeline_entry(event: Event) -> TimelineEntry:
    summary, details = describe(event)
    return TimelineEntry(type=event.type, producer=event.producer, occurred_at=event.occurred_at,
                         summary=summary, details=details, event_id=str(event.event_id))


def describe(event: Event) -> tuple[str, dict[str, Any]]:
    """A one-line summary and the details worth keeping (without the bulky spec/workload copies)."""
    data: BaseModel = event.data
    if event.type == "training.requested":
        workload: Workload = data  # type: ignore[assignment]
        details = workload.model_dump(mode="json", by_alias=True, exclude={"spec"})
        # the trainer's own, caused by another system's request: the request it accepted, as it runs
        accepted = "accepted for approval: " if event.producer == "trainer" and event.causation_id else ""
        return f"{accepted}submitted by {workload.requester} ({workload.priority} priority)", details
    details = data.model_dump(mode="json", by_alias=True, exclude={"workload"})
    summary = _SUMMARIES.get(event.type, lambda d: event.type)(details)
    return summary, details


_SUMMARIES = {
    "approval.required": lambda d: "approval required: " + "; ".join(d["reasons"]),
    "looptest.requested": lambda d: (f"loop test {d['test_run_id']} requested by {d['requested_by']} "
                                     f"({_plural(d['episodes'], 'episode' if d['mode'] == 'rl' else 'run')})"),
    "looptest.completed": lambda d: (f"loop test {d['test_run_id']} finished on the scheduler"
                                     + (f": {d['failure']}" if d.get("failure") else "")),
    "looptest.passed": lambda d: f"loop test {d['test_run_id']} passed",
    "looptest.failed": lambda d: (f"loop test {d['test_run_id']} failed"
                                  + (f": {d['loop_test']['results'].get('reason')}"
                                     if (d["loop_test"].get("results") or {}).get("reason") else "")),
    "workload.approved": lambda d: ("approved automatically (below the approval threshold)" if d["auto"]
                                    else f"approved by {d.get('approved_by')}"),
    "workload.rejected": lambda d: f"rejected by {d['rejected_by']}: {d['comment']}",
    "workload.cancel_requested": lambda d: f"cancellation requested by {d['requested_by']}",
    "workload.queued": lambda d: ("loop test run queued" if d.get("loop_test")
                                  else f"queued with {d['priority']} priority"),
    "workload.started": lambda d: ("started" + (" on " + ", ".join(sorted({a["node"] for a in d["allocations"]}))
                                                if d.get("allocations") else "")),
    "workload.completed": lambda d: f"completed: {_plural(len(d['artifacts']), 'component artifact')} staged",
    "workload.failed": lambda d: f"failed at {d['stage']}: {d['reason']}",
    "workload.cancelled": lambda d: f"cancelled by {d['cancelled_by']}" + (" while running" if d["was_running"] else ""),
    "model.stored": lambda d: f"model {d['model_id']} v{d['version']} stored ({_plural(d['files'], 'file')}, {d['size_bytes']} bytes)",
    "model.store_failed": lambda d: (f"model store failed (attempt {d['attempt']}): {d['reason']}"
                                     + ("; will retry" if d["will_retry"] else "")),
}


def new_workload_id() -> str:
    return "WL-" + secrets.token_hex(4).upper()


def resource_defaults(spec: AppSpec) -> tuple[RequestedResources, SpecComponent]:
    """TR-02: the largest single component (most GPUs, then most memory) fills the request."""
    largest = spec.largest_component()
    if largest is None:
        raise Invalid(f"app {spec.app_id} version {spec.version} has no components to run", code="no_components")
    resources = RequestedResources(gpu_type=largest.resources.gpu_type, gpu_count=largest.resources.gpu_count,
                                   memory=largest.resources.memory, max_runtime=DEFAULT_MAX_RUNTIME)
    return resources, largest


def check_envelope(resources: RequestedResources, spec: AppSpec) -> None:
    """The envelope must hold the largest component, or the workload could never be placed."""
    _, largest = resource_defaults(spec)
    if resources.gpu_count < largest.resources.gpu_count:
        raise Invalid(f"gpu_count {resources.gpu_count} is below the {largest.resources.gpu_count} GPUs "
                      f"component '{largest.name}' ({largest.component_id}) needs", code="envelope_too_small")
    if parse_memory(resources.memory) < parse_memory(largest.resources.memory):
        raise Invalid(f"memory {resources.memory} is below the {largest.resources.memory} "
                      f"component '{largest.name}' ({largest.component_id}) needs", code="envelope_too_small")


@dataclass(frozen=True)
class Submission:
    spec: AppSpec
    requester: str
    resources: RequestedResources | None
    training_config: WireTrainingConfig
    env_vars: dict[str, str] = field(default_factory=dict)
    secret_env_vars: dict[str, SecretRef] = field(default_factory=dict)  # the request's own secrets
    priority: Priority = "normal"
    name: str = ""
    is_training_request: bool = True
    test_run_ref: str | None = None


def build_workload(submission: Submission, *, workload_id: str, submitted_at: datetime) -> Workload:
    """The workload of docs/spec.md §4.3, carrying a spec snapshot that is what will actually run.

    The snapshot takes the submission's training config and environment variables, so the
    scheduler and the stored model's lineage see exactly what was asked for.
    """
    spec = submission.spec
    resources = submission.resources or resource_defaults(spec)[0]
    check_envelope(resources, spec)
    snapshot = spec.model_copy(update={
        "training_config": submission.training_config.to_spec(),
        # a request's variable, plain or secret, takes the place of the App's of that name
        "env_vars": {**{k: v for k, v in spec.env_vars.items() if k not in submission.secret_env_vars},
                     **submission.env_vars},
        "secret_env_vars": {**{k: v for k, v in spec.secret_env_vars.items() if k not in submission.env_vars},
                            **submission.secret_env_vars},
        "test_run_ref": submission.test_run_ref,
    })
    return Workload(
        workload_id=workload_id, app_id=spec.app_id, spec_version=spec.version, name=submission.name or spec.name,
        requester=submission.requester, priority=submission.priority, submitted_at=submitted_at,
        resources=resources, is_training_request=submission.is_training_request,
        training_config=submission.training_config, test_run_ref=submission.test_run_ref, spec=snapshot,
    )


def outside_requester_allowed(requester: str, producer: str) -> bool:
    """Another system requests as itself, or for someone it names under its own prefix (`mes:alice`): never
    as a platform user, whose subject it cannot prove, so nobody is held to a request they did not make
    (a platform user's subject is never `mes:…`, and ownership compares whole subjects)."""
    return requester == producer or (requester.startswith(f"{producer}:") and len(requester) > len(producer) + 1)


@dataclass
class TrainingRequest(Aggregate):
    """A training request: submitted here (with the workload it became) or loaded to be cancelled (with
    the status its timeline folds to and who, if anyone, already asked to cancel it)."""

    workload_id: str
    requester: str
    status: str = "waiting"
    workload: Workload | None = None
    cancel_requested_by: str | None = None
    cancel_requested_at: datetime | None = None
    refusal: str | None = None  # why an outside request was not accepted (`receive`)

    @property
    def correlation_id(self) -> str:
        return self.workload_id

    @classmethod
    def submit(cls, submission: Submission, *, workload_id: str, submitted_at: datetime) -> "TrainingRequest":
        """The request a submission makes; it enters the approval process with its `training.requested`."""
        workload = build_workload(submission, workload_id=workload_id, submitted_at=submitted_at)
        request = cls(workload_id=workload_id, requester=workload.requester, workload=workload)
        request.record("training.requested", workload)
        return request

    @classmethod
    def receive(cls, outside: Workload, *, producer: str, spec: AppSpec | None,
                cause: Event | None = None) -> "TrainingRequest":
        """A request another system published (as `producer`, validated by the broker). Accepted only for a
        ready App at that spec version and a requester it may name (outside_requester_allowed); then it is rebuilt from the
        platform's own spec (what the outside snapshot says would run is never trusted) and goes on to
        approval with the trainer's `training.requested`. Otherwise `refusal` says why, and nothing runs."""
        request = cls(workload_id=outside.workload_id, requester=outside.requester, workload=outside)
        if spec is None:
            request.refusal = (f"version {outside.spec_version} of app {outside.app_id} is not a ready app "
                               "on the platform")
        elif not outside_requester_allowed(outside.requester, producer):
            request.refusal = (f"requester {outside.requester!r} is not one {producer!r} may name: the publishing "
                               f"system itself ({producer!r}) or someone it acts for ({producer}:<name>)")
        else:
            submission = Submission(
                spec=spec, requester=outside.requester, resources=outside.resources,
                training_config=outside.training_config, env_vars=dict(outside.spec.env_vars),
                priority=outside.priority, name=outside.name, is_training_request=outside.is_training_request,
                test_run_ref=outside.test_run_ref)
            try:
                request.workload = build_workload(submission, workload_id=outside.workload_id,
                                                  submitted_at=outside.submitted_at)
            except Invalid as exc:
                request.refusal = exc.message
            else:
                request.record("training.requested", request.workload, cause=cause)
        return request

    def refusal_entry(self, cause: Event, now: datetime) -> TimelineEntry:
        """The timeline's record of the refusal (one per outside event, however often it is handled)."""
        assert self.refusal is not None
        return TimelineEntry(type=REFUSED, producer="trainer", occurred_at=max(now, cause.occurred_at),
                             summary=f"refused: {self.refusal}",
                             details={"reason": self.refusal, "published_by": cause.producer},
                             event_id=str(uuid.uuid5(cause.event_id, REFUSED)))

    def request_cancel(self, by: str, *, admin: bool) -> bool:
        """Its requester or an admin asks to cancel it while it has not ended; True when this is the first
        ask (asking twice publishes one `workload.cancel_requested`)."""
        if not admin and by != self.requester:
            raise Forbidden(f"only the requester ({self.requester}) or an admin may cancel {self.workload_id}")
        if self.status not in CANCELLABLE:
            raise Conflict(f"training request {self.workload_id} has already ended ({self.status}); nothing to cancel",
                           code="already_ended", status=self.status)
        if self.cancel_requested_by is not None:
            return False
        self.cancel_requested_by = by
        self.record("workload.cancel_requested", WorkloadCancelRequested(workload_id=self.workload_id, requested_by=by))
        return True


def merge_training_config(app_config: WireTrainingConfig, given: dict[str, Any],
                          simulation_seed: int | None) -> WireTrainingConfig:
    """Fields the submission leaves out come from the App's own training_config (itself TR-03 defaults)."""
    merged = {**app_config.model_dump(), **given}
    if simulation_seed is not None:  # TR-04: the simulator's seed travels in env_config, as in docs/spec.md §2.2
        merged["env_config"] = {**merged.get("env_config", {}), "simulation_seed": simulation_seed}
    return WireTrainingConfig(**merged)


@dataclass(frozen=True)
class AppSummary:
    app_id: str
    name: str
    version: str
    task_count: int
    component_count: int
    largest: dict[str, Any] | None


def summarise_app(spec: AppSpec) -> AppSummary:
    largest = spec.largest_component()
    return AppSummary(
        app_id=spec.app_id, name=spec.name, version=spec.version, task_count=len(spec.tasks),
        component_count=len(spec.components()),
        largest=None if largest is None else {"component_id": largest.component_id, "name": largest.name,
                                              **largest.resources.model_dump()},
    )
