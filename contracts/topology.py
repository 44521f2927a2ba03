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

# an admin changed the queue's order or a node's status: only the console's live stream wants them
QUEUE_CHANGED = "queue.changed"
NODE_STATUS_CHANGED = "node.status_changed"
CONSOLE_EVENTS = (QUEUE_CHANGED, NODE_STATUS_CHANGED)
# the library's changes, which the console's library and builder palette redraw on
COMPONENT_EVENTS = ("component.registered", "component.updated")

# each service records the decisions people make through it (services/kit/audit.py); the gateway stores them
AUDIT = "audit.recorded"

SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "builder": ("component.registered", "component.updated"),
    "library": ("app.spec_created", "app.deleted"),
    "trainer": ("app.spec_created", "app.deleted") + SAGA_EVENTS,
    # workload.cancel_requested: before an admin decides, the approval step is the one to end the workload
    "approval": ("training.requested", "looptest.completed", "workload.cancel_requested"),
    "scheduler": ("workload.approved", "looptest.requested", "workload.cancel_requested",
                  "component.registered", "component.updated"),
    # an App's owner (spec_created carries it, owner_changed moves it): who may move its aliases
    "models": ("workload.completed", "app.spec_created", "app.owner_changed"),
    # the front door: every saga event for the console's live stream (GET /api/events)
    # and every service's audit records for the audit log (AU-04)
    "gateway": SAGA_EVENTS + ("model.alias_moved", *CONSOLE_EVENTS, *COMPONENT_EVENTS, AUDIT),
}

SERVICES = tuple(SUBSCRIPTIONS)

# What each service publishes, and nothing else: a consumer believes an event only from a producer that
# publishes its type (services/kit/messaging.py), each service's broker user may write only these routing
# keys (its topic permission), and its outbox refuses to record any other (services/kit/outbox.py).
PUBLISHES: dict[str, tuple[str, ...]] = {
    "builder": ("app.spec_created", "app.owner_changed", "app.deleted", AUDIT),
    "library": ("component.registered", "component.updated", AUDIT),
    "trainer": ("training.requested", "workload.cancel_requested", AUDIT),
    "approval": ("approval.required", "looptest.requested", "looptest.passed", "looptest.failed",
                 "workload.approved", "workload.rejected", "workload.cancelled", AUDIT),
    "scheduler": ("looptest.completed", "workload.queued", "workload.started", "workload.completed",
                  "workload.failed", "workload.cancelled", *CONSOLE_EVENTS, AUDIT),
    "models": ("model.stored", "model.store_failed", "model.alias_moved", AUDIT),
    "gateway": (),
}


def queue_name(service: str) -> str:
    return f"{service}.events"


def dead_letter_queue(service: str) -> str:
    return f"{service}.dlq"


# Who may publish: every service and every outside system connects as a broker user of its own, and
# RabbitMQ checks each message's `user_id` against it, so a consumer knows who published what.
# `<prefix><service>` may publish as producer <service> only; `<prefix>ext-<name>`, a system outside
# the platform, only OUTSIDE_EVENTS, as producer <name>. `guest` is believed as anyone only with
# AVATAR_ENV=local (where it is the one user and has every permission anyway).
USER_PREFIX = "avatar-"
OUTSIDE = "ext-"
OUTSIDE_EVENTS = ("training.requested",)
LOCAL_USER = "guest"


def service_user(service: str, prefix: str = USER_PREFIX) -> str:
    return f"{prefix}{service}"


def outside_user(name: str, prefix: str = USER_PREFIX) -> str:
    if name in SUBSCRIPTIONS:
        raise ValueError(f"an outside publisher may not be named like the platform's service {name!r}")
    return f"{prefix}{OUTSIDE}{name}"


def _exactly(*names: str) -> str:
    if not names:
        return "^$"  # nothing at all
    return "^(" + "|".join(name.replace(".", r"\.") for name in names) + ")$"


def service_topic_permissions(service: str) -> dict[str, str]:
    """A service's user writes to avatar.events only the routing keys it publishes (PUBLISHES)."""
    return {"exchange": EXCHANGE, "write": _exactly(*PUBLISHES[service]), "read": ".*"}


def service_permissions(service: str) -> dict[str, str]:
    """RabbitMQ's configure/write/read patterns for a service's user: the two exchanges, its own queue and
    its own dead-letter queue (it binds those, consumes its queue, publishes events and dead letters)."""
    own = _exactly(EXCHANGE, DEAD_LETTER_EXCHANGE, queue_name(service), dead_letter_queue(service))
    return {"configure": own, "write": own, "read": own}


def outside_permissions() -> dict[str, str]:
    """An outside publisher writes to avatar.events and nothing else (its topic permission narrows the
    routing keys to OUTSIDE_EVENTS); it declares, binds and reads nothing."""
    return {"configure": "^$", "write": _exactly(EXCHANGE), "read": "^$"}


def outside_topic_permissions() -> dict[str, str]:
    return {"exchange": EXCHANGE, "write": _exactly(*OUTSIDE_EVENTS), "read": "^$"}
