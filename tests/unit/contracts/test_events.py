import json
import uuid

import pytest
from pydantic import ValidationError

from contracts import export
from contracts.events import CATALOGUE, EVENT_TYPES, WorkloadFailed, make_event, parse_event
from contracts.topology import SUBSCRIPTIONS

ENVELOPE = {"event_id", "type", "version", "occurred_at", "producer", "correlation_id", "causation_id", "data"}


def test_every_event_has_the_envelope():
    for event_type, model in EVENT_TYPES.items():
        assert set(model.model_fields) == ENVELOPE, event_type


def test_every_architecture_event_is_in_the_catalogue():
    consumed = {key for keys in SUBSCRIPTIONS.values() for key in keys}
    assert consumed <= set(CATALOGUE)
    assert {"model.stored", "model.store_failed", "workload.queued", "workload.started"} <= set(CATALOGUE)


def test_event_round_trips_through_json():
    event = make_event("workload.failed", WorkloadFailed(workload_id="WL-1", stage="run", reason="exit 1"),
                       producer="scheduler", correlation_id="WL-1", causation_id=uuid.uuid4())
    parsed = parse_event(json.dumps(event.to_wire()).encode())
    assert parsed == event and type(parsed).__name__ == "WorkloadFailed"


def test_wrong_type_for_payload_is_refused():
    wire = make_event("workload.failed", WorkloadFailed(workload_id="WL-1", stage="run", reason="x"),
                      producer="scheduler", correlation_id="WL-1").to_wire()
    wire["type"] = "workload.rejected"
    with pytest.raises(ValidationError):
        parse_event(wire)


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"type": "nope"}', b'{"type": "workload.failed", "version": 2}'])
def test_malformed_bodies_are_refused_with_a_reason(body):
    with pytest.raises(ValueError):
        parse_event(body)


def test_exported_schemas_are_current():
    assert export.main(["--check"]) == 0
