"""Whom a consumer believes and what an outbox records, as pure rules (contracts/topology.py PUBLISHES)."""
from __future__ import annotations

import pytest

from contracts.events import WorkloadCancelled, make_event
from contracts.topology import PUBLISHES
from services.kit.messaging import Publishers
from services.kit.outbox import Outbox
from services.kit.wakeups import Wakeups


def _cancelled(producer: str):
    return make_event("workload.cancelled", WorkloadCancelled(workload_id="WL-1", cancelled_by="ada", was_running=False),
                      producer=producer, correlation_id="WL-1")


def test_a_service_is_believed_only_for_the_events_it_produces():
    rules = Publishers(prefix="avatar-", local=False)
    assert rules.refusal(_cancelled("scheduler"), "workload.cancelled", "avatar-scheduler") is None
    assert rules.refusal(_cancelled("library"), "workload.cancelled", "avatar-library") == (
        f"user avatar-library may publish only {', '.join(PUBLISHES['library'])}, not workload.cancelled")


def test_an_outside_publisher_is_told_it_is_outside():
    refusal = Publishers(prefix="avatar-", local=False).refusal(_cancelled("mes"), "workload.cancelled",
                                                                 "avatar-ext-mes")
    assert refusal == "user avatar-ext-mes may publish only training.requested, not workload.cancelled " \
                      "(it is outside the platform)"


def test_every_event_type_has_a_producer_and_every_producer_is_a_service():
    from contracts.events import EVENT_TYPES
    produced = {t for types in PUBLISHES.values() for t in types}
    assert produced == set(EVENT_TYPES)


async def test_an_outbox_refuses_an_event_its_service_does_not_publish():
    outbox = Outbox("library", Wakeups(None, "library"))
    with pytest.raises(ValueError, match="library does not publish workload.cancelled"):
        await outbox.add_many(None, [(_cancelled("library"), {})])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="as 'scheduler'"):
        await Outbox("approval", Wakeups(None, "approval")).add_many(None, [(_cancelled("scheduler"), {})])  # type: ignore[arg-type]
