"""services/kit/audit.py and request_id.py: a decision becomes one bounded audit event in its unit of work,
carrying the request's X-Request-ID and trace id."""
import asyncio

import httpx
import pytest
from fastapi import FastAPI

from services.kit.audit import correlation_for, decision, fit, list_of, record_decision
from services.kit.auth import Principal
from services.kit.request_id import RequestId, parse_request_id, request_identity
from services.kit.unit_of_work import AbstractUnitOfWork


@pytest.mark.parametrize("raw, expected", [
    (b"req-1", "req-1"), (b"  0af7-uuid  ", "0af7-uuid"), (b"x" * 128, "x" * 128), (b"x" * 129, None),
    (b"two words", None), (b"a\x00b", None), (b"\xc3\xa9", None), (b"", None), (None, None)])
def test_only_a_bounded_printable_request_id_is_kept(raw, expected):
    assert parse_request_id(raw) == expected


def test_a_decision_is_recorded_in_the_unit_with_the_actor_and_a_short_correlation_id():
    uow = AbstractUnitOfWork()
    record_decision(uow, action="scheduler.node_drain", actor=Principal(user="park", role="admin"),
                    target_type="node", target_id="n" * 200, before={"status": "Active"}, after={"status": "Drain"})
    [recorded] = uow.collect()
    assert recorded.type == "audit.recorded" and len(recorded.correlation_id) == 64
    assert (recorded.data.actor, recorded.data.actor_role, recorded.data.request_id) == ("park", "admin", None)
    assert correlation_for("n" * 200) == recorded.correlation_id != correlation_for("n" * 199 + "m")
    assert correlation_for("WL-1") == "WL-1"


def test_an_oversized_state_is_replaced_by_its_field_names_and_a_long_comment_is_cut():
    big = {f"VAR_{i}": "x" * 200 for i in range(30)}
    assert fit(big) == {"omitted": "too large to record", "fields": sorted(big)[:19] + ["... 11 more"]}
    made = decision(action="builder.env_vars_change", actor="kim", target_type="app", target_id="APP-1",
                    after=big, comment="y" * 5000)
    assert made.after["omitted"] and len(made.comment) == 2000
    assert list_of(range(100), limit=3) == ["0", "1", "... 98 more"]
    huge = decision(action="builder.env_vars_change", actor="kim", target_type="app", target_id="APP-1",
                    before={"K" * 200 + str(i): i for i in range(500)})
    assert len(huge.before["fields"]) == 20 and huge.before["omitted"]


async def test_the_middleware_binds_the_request_id_for_the_handler_and_nothing_leaks_after():
    app = FastAPI()
    app.add_middleware(RequestId)

    @app.get("/who")
    async def who() -> dict:
        await asyncio.sleep(0)
        identity = request_identity()
        return {"request_id": identity.request_id, "trace_id": identity.trace_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        given = await client.get("/who", headers={"X-Request-ID": "req-42"})
        bad = await client.get("/who", headers={"X-Request-ID": "x" * 500})
    assert given.json()["request_id"] == "req-42" and bad.json()["request_id"] is None
    assert request_identity().request_id is None


def test_an_action_outside_the_documented_list_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown audit action"):
        decision(action="scheduler.teleport", actor="kim", target_type="node", target_id="n")
