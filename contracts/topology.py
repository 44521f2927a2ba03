"""Exchange, routing-key and queue names: who consumes what (docs/architecture.md §3)."""
from __future__ import annotations

EXCHANGE = "avatar.events"
DEAD_LETTER_EXCHANGE = "avatar.dlx"

SAGA_EVENTS = (
    "training.requested", "approval.required", "looptest.requested", "looptest.completed",
    "looptest.passed", "looptest.failed", "workload.approved", "workload.rejected",
    "workload.cancel_requested", "workload.queued", "workload.started", "workload.completed",
    "workload.failed", "workload.cancelled", "model.stored", "model.store_failed",
)

SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "builder": ("component.registered", "component.updated"),
    "library": ("app.spec_created", "app.deleted"),
    "trainer": ("app.spec_created", "app.deleted") + SAGA_EVENTS,
    # workload.cancel_requested: before an admin decides, the approval step is the one to end the workload
    "approval": ("training.requested", "looptest.completed", "workload.cancel_requested"),
    "scheduler": ("workload.approved", "looptest.requested", "workload.cancel_requested",
                  "component.registered", "component.updated"),
    "models": ("workload.completed",),
}

SERVICES = tuple(SUBSCRIPTIONS)


def queue_name(service: str) -> str:
    return f"{service}.events"


def dead_letter_queue(service: str) -> str:
    return f"{service}.dlq"
