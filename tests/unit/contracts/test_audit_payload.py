"""audit.recorded carries a bounded record of one decision: small before/after objects, short ids."""
import pytest
from pydantic import ValidationError

from contracts.events import AuditRecorded, make_event, parse_event
from contracts.topology import PUBLISHES, SUBSCRIPTIONS


def record(**overrides) -> AuditRecorded:
    fields = dict(action="approval.approve", actor="park", actor_role="admin", target_type="workload",
                  target_id="WL-1", before={"status": "pending"}, after={"status": "approved"},
                  request_id="req-1", trace_id="0af7651916cd43dd8448eb211c80319c")
    return AuditRecorded(**{**fields, **overrides})


def test_a_record_round_trips_through_the_wire():
    event = make_event("audit.recorded", record(comment="ok"), producer="approval", correlation_id="WL-1")
    assert parse_event(event.to_json()) == event


@pytest.mark.parametrize("overrides", [
    {"action": "approve"}, {"action": "Approval.Approve"}, {"action": "a." + "x" * 63},
    {"actor": ""}, {"actor": "x" * 256}, {"target_type": "Work Load"}, {"target_id": "x" * 256},
    {"comment": "x" * 2001}, {"request_id": "x" * 129}, {"request_id": "two words"}, {"request_id": "a\nb"},
    {"trace_id": "0AF7651916CD43DD8448EB211C80319C"}, {"trace_id": "abc"},
    {"before": {f"k{i}": i for i in range(33)}}, {"after": {"spec": "x" * 5000}},
    {"after": {"a": {"b": {"c": {"d": 1}}}}}, {"unknown": 1},
])
def test_out_of_bounds_fields_are_refused(overrides):
    with pytest.raises(ValidationError):
        record(**overrides)


def test_optional_fields_may_be_left_out_and_nesting_up_to_three_levels_is_kept():
    bare = AuditRecorded(action="scheduler.node_drain", actor="park", target_type="node", target_id="node-a")
    assert (bare.before, bare.after, bare.request_id, bare.trace_id, bare.actor_role) == (None,) * 5
    assert record(after={"gate": {"metric": {"name": "r"}}}).after == {"gate": {"metric": {"name": "r"}}}


def test_every_service_publishes_it_and_the_gateway_alone_consumes_it():
    services = ("builder", "library", "trainer", "approval", "scheduler", "models")
    assert all("audit.recorded" in PUBLISHES[service] for service in services)
    assert [s for s, keys in SUBSCRIPTIONS.items() if "audit.recorded" in keys] == ["gateway"]
