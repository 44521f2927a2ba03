"""Every event of the platform: one envelope, one typed payload per routing key.

Events are facts in past tense; `type` is also the routing key on `avatar.events`.
The envelope is snake_case; the embedded workload is camelCase (docs/spec.md §4.3).
"""
from __future__ import annotations

import functools
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from contracts.bounded_json import ComposedJson, bounded_object
from contracts.resources import Resources
from contracts.spec import AppSpec, ImageRef
from contracts.workload import LoopTest, Priority, Workload

_PAYLOAD = ConfigDict(extra="forbid")


class AppSpecCreated(BaseModel):
    model_config = _PAYLOAD
    app_id: str
    version: str
    spec: AppSpec
    owner: str | None = Field(default=None, description="the App's owner when the spec was generated (None: the "
                              "platform's; only an admin changes it)")


class AppOwnerChanged(BaseModel):
    model_config = _PAYLOAD
    app_id: str
    owner: str = Field(description="the App's new owner")
    previous: str | None = Field(default=None, description="its owner before (None: the platform's)")
    changed_by: str


class AppDeleted(BaseModel):
    model_config = _PAYLOAD
    app_id: str
    deleted_by: str


ComponentType = Literal["trainer", "data_loader", "preprocessor", "evaluator", "other"]


class ComponentSnapshot(BaseModel):
    model_config = _PAYLOAD
    component_id: str
    name: str
    image: ImageRef
    description: str = ""
    version: str
    type: ComponentType = "other"
    resources: Resources
    params: ComposedJson = Field(default_factory=dict)
    command: list[str] = Field(default_factory=list)


class ComponentChanged(BaseModel):
    model_config = _PAYLOAD
    component: ComponentSnapshot


class ApprovalRequired(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    app_id: str
    reasons: list[str]
    loop_test: LoopTest


class LoopTestRequested(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    test_run_id: str
    mode: Literal["rl", "general"]
    episodes: int = Field(ge=1, le=1000, description="RL: episodes to run; general: repeated runs")
    requested_by: str
    workload: Workload


class RunRecord(BaseModel):
    model_config = _PAYLOAD
    run: int
    success: bool
    duration_s: float
    reason: str | None = None


class LoopTestCompleted(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    test_run_id: str
    mode: Literal["rl", "general"]
    rewards: list[float] = Field(default_factory=list, description="RL: reward per episode")
    runs: list[RunRecord] = Field(default_factory=list, description="general: one record per run")
    failure: str | None = None


class LoopTestOutcome(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    test_run_id: str
    loop_test: LoopTest


class WorkloadApproved(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    auto: bool
    approved_by: str | None = None
    workload: Workload


class WorkloadRejected(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    rejected_by: str
    comment: str


class WorkloadCancelRequested(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    requested_by: str


class WorkloadQueued(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    priority: Priority
    loop_test: bool = False


class QueueChanged(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    action: Literal["move", "priority"] = Field(description="placed before/after another, or given another class")
    priority: Priority
    position: int = Field(ge=1, description="its 1-based place in the whole queue after the change")
    changed_by: str


class NodeStatusChanged(BaseModel):
    model_config = _PAYLOAD
    name: str
    status: Literal["Active", "Drain", "Down"]
    previous: Literal["Active", "Drain", "Down"]
    changed_by: str


class ComponentAllocation(BaseModel):
    model_config = _PAYLOAD
    task_id: str
    component_id: str
    node: str
    gpu_type: str
    gpu_indices: list[int] = Field(default_factory=list)


class WorkloadStarted(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    allocations: list[ComponentAllocation] = Field(default_factory=list)


class ComponentArtifacts(BaseModel):
    model_config = _PAYLOAD
    task_id: str
    component_id: str
    name: str
    prefix: str = Field(description="s3://bucket/prefix/ holding the component's outputs")
    log: str | None = Field(default=None, description="s3://bucket/key of the component's run log")
    metrics: dict[str, Any] = Field(default_factory=dict)


class WorkloadCompleted(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    artifacts: list[ComponentArtifacts]
    workload: Workload


Stage = Literal["queue", "allocation", "run", "timeout", "cancel", "loop_test"]


class WorkloadFailed(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    stage: Stage
    reason: str
    component_id: str | None = None


class WorkloadCancelled(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    cancelled_by: str
    was_running: bool


class ModelStored(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    model_id: str
    app_id: str
    version: int
    size_bytes: int
    files: int


class ModelStoreFailed(BaseModel):
    model_config = _PAYLOAD
    workload_id: str
    reason: str
    attempt: int
    will_retry: bool


class ModelAliasMoved(BaseModel):
    model_config = _PAYLOAD
    app_id: str
    alias: str
    model_id: str
    version: int
    previous_model_id: str | None = None
    action: Literal["move", "rollback"]
    moved_by: str
    sequence: int | None = Field(default=None, description="grows with every move of the App's aliases; events may "
                                 "arrive out of order, so ignore one older than the last applied")


# An audit record's before/after: the few fields a decision changed, never a whole spec, so a record stays
# small enough to store and list by the thousand.
AUDIT_STATE_MAX_KEYS = 32
AUDIT_STATE_MAX_DEPTH = 3
AUDIT_STATE_MAX_BYTES = 4096


AuditState = bounded_object(AUDIT_STATE_MAX_KEYS, AUDIT_STATE_MAX_DEPTH, AUDIT_STATE_MAX_BYTES)


class AuditRecorded(BaseModel):
    """A domain decision as the service that made it saw it (AU-04); the gateway stores it append-only."""

    model_config = _PAYLOAD
    action: str = Field(min_length=3, max_length=64, pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$",
                        description="<service>.<verb>, e.g. approval.approve, scheduler.queue_move")
    actor: str = Field(min_length=1, max_length=255, description="the user (token subject) who decided")
    actor_role: str | None = Field(default=None, max_length=32)
    target_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$",
                             description="workload, node, app, component, model, threshold, ...")
    target_id: str = Field(min_length=1, max_length=255)
    before: AuditState | None = Field(default=None, description="the changed fields before the decision")
    after: AuditState | None = Field(default=None, description="the changed fields after it")
    comment: str | None = Field(default=None, max_length=2000)
    request_id: str | None = Field(default=None, max_length=128, pattern=r"^[!-~]+$",
                                   description="the X-Request-ID of the HTTP request that made the decision")
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$",
                                 description="the W3C trace id of that request")


P = TypeVar("P", bound=BaseModel)


class Event(BaseModel, Generic[P]):
    """The envelope every message on `avatar.events` carries."""

    model_config = ConfigDict(extra="forbid")
    TYPE: ClassVar[str] = ""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    producer: str = Field(min_length=1, max_length=64)
    correlation_id: str = Field(min_length=1, max_length=64, description="the workload id or app id the event is about")
    causation_id: uuid.UUID | None = Field(default=None, description="event_id of the event that caused this one")
    data: P

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        """The wire form as JSON text (what to_wire() gives, serialised in one pass)."""
        return self.model_dump_json(by_alias=True)


def _event(routing_key: str, payload: type[P], doc: str) -> type[Event]:
    model = type(
        "".join(part.title() for part in routing_key.replace("_", ".").split(".")),
        (Event[payload],),
        {
            "__doc__": doc,
            "__annotations__": {"type": Literal[routing_key]},  # type: ignore[valid-type]
            "type": routing_key,
            "TYPE": routing_key,
            "__module__": __name__,
        },
    )
    return model


# routing key → (payload, what it means). The single catalogue of the saga.
CATALOGUE: dict[str, tuple[type[BaseModel], str]] = {
    "app.spec_created": (AppSpecCreated, "The builder wrote a new immutable App spec version; the App is ready."),
    "app.owner_changed": (AppOwnerChanged, "An admin gave an App to another owner (`PUT /apps/{id}/owner`); "
                                           "only the new owner or an admin changes it, its model aliases included."),
    "app.deleted": (AppDeleted, "The builder deleted an App's working copy; its spec versions stay in the spec store."),
    "component.registered": (ComponentChanged, "A component was added to the global library."),
    "component.updated": (ComponentChanged, "A library component changed; the previous version is kept."),
    "training.requested": (Workload, "A training request was submitted: by the trainer, or by another system "
                                     "(its own broker user, the AMQP user_id set, `producer` its name). Another "
                                     "system's request is accepted only for a ready App at that `specVersion` and a "
                                     "requester it may name (`producer` itself, or `<producer>:<name>` for whom it "
                                     "acts, never a platform user); the trainer then publishes it as its own, rebuilt from the "
                                     "platform's spec of that version (the `spec` sent is never run), and only that "
                                     "one goes on to approval. A refused one ends `refused`, the reason on its "
                                     "timeline (GET /training-requests/{workloadId})."),
    "approval.required": (ApprovalRequired, "The request is above the threshold and waits for a passed loop test and an admin."),
    "looptest.requested": (LoopTestRequested, "Run the minimum run test of a workload."),
    "looptest.completed": (LoopTestCompleted, "The scheduler finished a loop test run; raw results."),
    "looptest.passed": (LoopTestOutcome, "The approval service judged the loop test passed."),
    "looptest.failed": (LoopTestOutcome, "The approval service judged the loop test failed."),
    "workload.approved": (WorkloadApproved, "The workload may run (auto below the threshold, or by an admin)."),
    "workload.rejected": (WorkloadRejected, "An admin rejected the workload; the saga ends."),
    "workload.cancel_requested": (WorkloadCancelRequested, "Someone asked to cancel a workload."),
    "workload.queued": (WorkloadQueued, "The workload entered the scheduler's priority queue."),
    "queue.changed": (QueueChanged, "An admin moved a waiting workload or changed its priority class (QU-03): "
                                    "the queue's order changed."),
    "node.status_changed": (NodeStatusChanged, "An admin drained, activated or marked down a node (RS-04): what "
                                               "can be allocated changed."),
    "workload.started": (WorkloadStarted, "GPUs were allocated and the first components started."),
    "workload.completed": (WorkloadCompleted, "Every component finished successfully; artifacts are staged."),
    "workload.failed": (WorkloadFailed, "The run failed (component error, timeout, allocation); resources were released."),
    "workload.cancelled": (WorkloadCancelled, "The workload was cancelled; resources were released."),
    "model.stored": (ModelStored, "The workload's artifacts were stored and versioned as a model."),
    "model.store_failed": (ModelStoreFailed, "Storing the model failed; it will be retried."),
    "model.alias_moved": (ModelAliasMoved, "An App's model alias (e.g. production) now points at another model; "
                                           "serving systems hot-swap to it."),
    "audit.recorded": (AuditRecorded, "A service recorded a person's decision with what it changed (before/after); "
                                      "the gateway keeps it in the append-only audit log."),
}

EVENT_TYPES: dict[str, type[Event]] = {key: _event(key, payload, doc) for key, (payload, doc) in CATALOGUE.items()}


class UnknownEvent(ValueError):
    pass


@functools.cache
def _wire_events() -> TypeAdapter:
    """Every event type as one union told apart by `type`: a body is parsed and validated in one pass."""
    return TypeAdapter(Annotated[Union[tuple(EVENT_TYPES.values())], Field(discriminator="type")])  # noqa: UP007


def parse_event(body: bytes | str | dict[str, Any]) -> Event:
    """Validate a message body into its typed event; raises ValueError/ValidationError with the reason."""
    if isinstance(body, (bytes, str)):
        try:
            event = _wire_events().validate_json(body)
        except ValidationError:
            pass  # the step-by-step path below says precisely what is wrong
        else:
            if event.version == 1:
                return event
    import json

    raw = json.loads(body) if isinstance(body, (bytes, str)) else body
    if not isinstance(raw, dict):
        raise UnknownEvent("message body is not a JSON object")
    event_type = raw.get("type")
    model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise UnknownEvent(f"unknown event type {event_type!r}")
    if raw.get("version", 1) != 1:
        raise UnknownEvent(f"unsupported version {raw.get('version')!r} of {event_type}")
    return model.model_validate(raw)


def make_event(event_type: str, data: BaseModel, *, producer: str, correlation_id: str,
               causation_id: uuid.UUID | None = None) -> Event:
    return EVENT_TYPES[event_type](
        type=event_type, producer=producer, correlation_id=correlation_id, causation_id=causation_id, data=data
    )
