"""The audit log against real PostgreSQL and RabbitMQ: the request recorder, decisions, the services'
audit.recorded events, the admin search and CSV export."""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from datetime import datetime, timedelta, timezone

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from contracts.events import make_event
from services.gateway.audit import make_row
from services.gateway.identity import AnyCaller
from services.gateway.main import create_app
from tests.integration.gateway.conftest import gateway_settings
from tests.support.broker import publish
from tests.support.services import running_service

# Stand-ins for routes other parts of the gateway own (accounts, proxy): put in front of every other
# route, so a proxy's catch-all never takes them.
probe = APIRouter()


@probe.post("/api/audit-probe/things/{thing_id}")
async def mutate(thing_id: str, caller: AnyCaller) -> dict:
    return {"thing": thing_id, "by": caller.user}


@probe.get("/api/audit-probe/things/{thing_id}")
async def read(thing_id: str, caller: AnyCaller) -> dict:
    return {"thing": thing_id}


@probe.post("/api/audit-probe/proxied/{rest:path}")
async def proxied(rest: str, request: Request, caller: AnyCaller) -> JSONResponse:
    # what the proxy does: the upstream's route template and ids, and the request id it sent upstream
    request.state.route_template = "/api/trainer/training-requests/{workload_id}/cancel"
    request.state.target_ids = {"workload_id": "WL-77"}
    return JSONResponse({"ok": True}, status_code=202, headers={"X-Request-ID": "req-proxy-1"})


@probe.get("/api/audit-probe/limited")
async def limited() -> None:
    raise HTTPException(429, "slow down", headers={"Retry-After": "1"})


@probe.post("/api/audit-probe/boom")
async def boom(caller: AnyCaller) -> None:
    raise RuntimeError("the route failed")


@probe.post("/api/audit-probe/users/{user_id}/deactivate")
async def deactivate(user_id: str, request: Request, caller: AnyCaller, roll_back: bool = False) -> dict:
    audit = request.app.state.audit
    pool = request.app.state.platform.pool
    async with pool.acquire() as conn:
        with contextlib.suppress(RuntimeError):
            async with conn.transaction():
                await audit.decision(action="user.deactivate", actor=caller, target_type="user", target_id=user_id,
                                     before={"active": True}, after={"active": False}, comment="left the team",
                                     request=request, conn=conn)
                if roll_back:
                    raise RuntimeError("the change failed")
    return {"deactivated": user_id, "rolled_back": roll_back}


def app_with_probe(settings):
    app = create_app(settings)
    before = len(app.router.routes)
    app.include_router(probe)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    return app


@pytest.fixture
async def audited(fresh):
    async with running_service(app_with_probe, gateway_settings(fresh)) as running:
        yield running


@contextlib.asynccontextmanager
async def owner(running):
    conn = await asyncpg.connect(running.settings.postgres_admin_url, server_settings={"search_path": "gateway"})
    try:
        yield conn
    finally:
        await conn.close()


async def rows(running, where: str = "TRUE", *args) -> list[asyncpg.Record]:
    await running.app.state.audit.flush()
    return await running.platform.pool.fetch(f"SELECT * FROM audit_log WHERE {where} ORDER BY id", *args)


async def test_one_row_per_mutating_request_and_none_for_reads(audited):
    client, headers = audited.client, audited.headers("researcher", "kim")
    answers = [await client.post(f"/api/audit-probe/things/T-{i}", headers={**headers, "User-Agent": "probe/1"})
               for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert (await client.get("/api/audit-probe/things/T-0", headers=headers)).status_code == 200
    assert (await client.post("/api/nowhere/at-all", headers=headers)).status_code in (404, 405)

    found = await rows(audited)
    assert len(found) == 4  # three mutations and the unmatched POST; the GET left nothing
    first = found[0]
    assert first["kind"] == "request" and first["method"] == "POST" and first["status"] == 200
    assert first["outcome"] == "ok"
    assert (first["actor"], first["actor_role"], first["via"]) == ("kim", "researcher", "jwt")
    assert first["route"] == "/api/audit-probe/things/{thing_id}"
    assert first["path"] == "/api/audit-probe/things/T-0"
    assert (first["target_type"], first["target_id"]) == ("thing", "T-0")
    assert first["target_ids"] == {"thing_id": "T-0"}
    assert first["user_agent"] == "probe/1"
    assert first["address"] == "127.0.0.1"
    assert first["request_id"] == answers[0].headers["x-request-id"]  # the client can quote it
    assert len({r["request_id"] for r in found}) == 4
    assert len(first["trace_id"]) == 32  # the server span's trace, sampled or not
    assert found[3]["path"] == "/api/nowhere/at-all" and found[3]["outcome"] == "refused"


async def test_proxied_request_keeps_the_upstream_route_and_request_id(audited):
    answer = await audited.client.post("/api/audit-probe/proxied/x", headers=audited.headers("researcher", "kim"))
    assert answer.status_code == 202
    (row,) = await rows(audited)
    assert row["route"] == "/api/trainer/training-requests/{workload_id}/cancel"
    assert (row["target_type"], row["target_id"], row["target_ids"]) == ("workload", "WL-77", {"workload_id": "WL-77"})
    assert row["request_id"] == "req-proxy-1" == answer.headers["x-request-id"]
    assert row["status"] == 202


async def test_refusals_are_recorded_whatever_the_method(audited):
    client = audited.client
    assert (await client.get("/api/audit")).status_code == 401
    assert (await client.get("/api/audit", headers=audited.headers("researcher", "rita"))).status_code == 403
    assert (await client.get("/api/audit-probe/limited")).status_code == 429
    unauthenticated, forbidden, limited = await rows(audited)
    assert (unauthenticated["kind"], unauthenticated["status"], unauthenticated["actor"]) == ("refusal", 401, None)
    assert unauthenticated["route"] == "/api/audit" and unauthenticated["method"] == "GET"
    assert (forbidden["kind"], forbidden["status"], forbidden["actor"]) == ("refusal", 403, "rita")
    assert forbidden["outcome"] == "refused"
    assert (limited["kind"], limited["status"]) == ("refusal", 429)


async def test_a_failed_request_leaves_one_row(audited):
    transport = httpx.ASGITransport(app=audited.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
        answer = await client.post("/api/audit-probe/boom", headers=audited.headers("researcher", "kim"))
    assert answer.status_code == 500
    (row,) = await rows(audited)
    assert (row["status"], row["outcome"], row["actor"]) == (500, "failed", "kim")


async def test_decision_is_stored_with_before_after_in_the_callers_transaction(audited):
    headers = audited.headers("admin", "ada")
    kept = await audited.client.post("/api/audit-probe/users/kim/deactivate", headers=headers)
    undone = await audited.client.post("/api/audit-probe/users/lee/deactivate?roll_back=true", headers=headers)
    assert kept.status_code == undone.status_code == 200
    decisions = await rows(audited, "kind = 'decision'")
    assert len(decisions) == 1  # the rolled-back change left no decision
    (decision,) = decisions
    assert (decision["action"], decision["actor"], decision["actor_role"]) == ("user.deactivate", "ada", "admin")
    assert (decision["target_type"], decision["target_id"]) == ("user", "kim")
    assert decision["before"] == {"active": True} and decision["after"] == {"active": False}
    assert decision["comment"] == "left the team" and decision["outcome"] == "ok"
    assert decision["producer"] == "gateway"
    assert decision["route"] == "/api/audit-probe/users/{user_id}/deactivate"
    # the request and the decision it made share the request id
    (request_row,) = await rows(audited, "kind = 'request' AND path = $1", "/api/audit-probe/users/kim/deactivate")
    assert decision["request_id"] == request_row["request_id"] == kept.headers["x-request-id"]
    assert len(await rows(audited, "kind = 'request'")) == 2  # both requests, one row each


async def test_decision_without_a_caller_names_the_user(audited):
    await audited.app.state.audit.decision(action="login.failure", actor=None, actor_user="mallory",
                                           target_type="user", target_id="mallory", outcome="refused",
                                           comment="wrong password")
    (row,) = await rows(audited)
    assert (row["actor"], row["actor_role"], row["outcome"], row["address"]) == ("mallory", None, "refused", None)


def audit_event(**overrides):
    from contracts.events import AuditRecorded

    data = dict(action="approval.approve", actor="ada", actor_role="admin", target_type="workload",
                target_id="WL-5", before={"status": "pending"}, after={"status": "approved"},
                comment="looks fine", request_id="req-9", trace_id="ab" * 16)
    data.update(overrides)
    return make_event("audit.recorded", AuditRecorded(**data), producer="approval", correlation_id="WL-5")


async def wait_for_rows(running, where: str, *args, count: int = 1, timeout: float = 15.0) -> list[asyncpg.Record]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await rows(running, where, *args)
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_audit_recorded_event_is_stored_once_even_if_delivered_twice(audited):
    event = audit_event()
    url = audited.settings.rabbitmq_url
    await publish(url, "audit.recorded", event)
    await publish(url, "audit.recorded", event)  # a relay that republished after a crash
    found = await wait_for_rows(audited, "event_id = $1", event.event_id)
    assert len(found) == 1
    await asyncio.sleep(1.0)  # the second delivery had its chance
    (row,) = await rows(audited, "kind = 'decision'")
    assert row["event_id"] == event.event_id and row["producer"] == "approval"
    assert (row["action"], row["actor"], row["actor_role"]) == ("approval.approve", "ada", "admin")
    assert (row["target_type"], row["target_id"]) == ("workload", "WL-5")
    assert row["before"] == {"status": "pending"} and row["after"] == {"status": "approved"}
    assert (row["comment"], row["request_id"], row["trace_id"]) == ("looks fine", "req-9", "ab" * 16)
    assert row["at"] == event.occurred_at


async def test_many_audit_events_delivered_together_are_each_stored(audited):
    events = [audit_event(target_id=f"WL-{i}", comment=None) for i in range(30)]
    await asyncio.gather(*(publish(audited.settings.rabbitmq_url, "audit.recorded", e) for e in events))
    found = await wait_for_rows(audited, "producer = 'approval'", count=30)
    assert sorted(r["event_id"] for r in found) == sorted(e.event_id for e in events)


async def test_event_insert_ignores_a_known_event_id(audited):
    # past the inbox's retention a redelivery is claimed again: the unique event id still holds
    from services.gateway.audit import _INSERT_EVENT, event_row

    event = audit_event()
    async with audited.platform.pool.acquire() as conn:
        await conn.execute(_INSERT_EVENT, *event_row(event))
        await conn.execute(_INSERT_EVENT, *event_row(event))
    assert len(await rows(audited, "event_id = $1", event.event_id)) == 1


async def seed(running) -> None:
    audit = running.app.state.audit
    for i in range(7):
        await audit.decision(action="user.deactivate" if i % 2 else "token.revoke", actor=None,
                             actor_user="ada" if i < 4 else "bob", target_type="user" if i % 2 else "token",
                             target_id=f"id-{i}", after={"i": i})
    await audit.decision(action="approval_x.approve", actor=None, actor_user="ada", target_type="workload",
                         target_id="WL-1")


async def test_search_filters(audited):
    await seed(audited)
    client, headers = audited.client, audited.headers("admin", "root")

    async def search(**params) -> list[dict]:
        answer = await client.get("/api/audit", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]

    everything = await search()
    assert len(everything) == 8
    assert [r["id"] for r in everything] == sorted((r["id"] for r in everything), reverse=True)  # newest first
    assert {r["user"] for r in await search(user="bob")} == {"bob"}
    assert len(await search(user="bob")) == 3
    assert {r["action"] for r in await search(action="user.")} == {"user.deactivate"}
    assert await search(action="approval_") == [everything[0]]  # the prefix's _ is literal
    assert await search(action="approval.") == []
    assert [r["target_id"] for r in await search(target_type="token", target_id="id-2")] == ["id-2"]
    assert len(await search(target_type="token")) == 4
    assert len(await search(kind="decision")) == 8 and await search(kind="refusal") == []
    assert len(await search(outcome="ok")) == 8
    now = datetime.now(timezone.utc)
    assert len(await search(**{"from": (now - timedelta(minutes=5)).isoformat()})) == 8
    assert await search(**{"to": (now - timedelta(minutes=5)).isoformat()}) == []
    bad = await client.get("/api/audit", params={"from": now.isoformat(), "to": (now - timedelta(1)).isoformat()},
                           headers=headers)
    assert bad.status_code == 422
    assert (await client.get("/api/audit", params={"limit": 501}, headers=headers)).status_code == 422
    assert (await client.get("/api/audit", params={"kind": "nonsense"}, headers=headers)).status_code == 422


async def test_search_pages_by_keyset(audited):
    await seed(audited)
    client, headers = audited.client, audited.headers("admin", "root")
    seen, before_id = [], None
    while True:
        params = {"limit": 3, **({"before_id": before_id} if before_id else {})}
        page = (await client.get("/api/audit", params=params, headers=headers)).json()
        seen += [r["id"] for r in page["items"]]
        before_id = page["next_before_id"]
        if before_id is None:
            break
    assert len(seen) == 8 and len(set(seen)) == 8 and seen == sorted(seen, reverse=True)
    gone = await client.get("/api/audit", params={"before_id": 10**9}, headers=headers)
    assert gone.status_code == 422


async def test_search_is_for_admins_only_and_a_refusal_is_recorded(audited):
    answer = await audited.client.get("/api/audit.csv", headers=audited.headers("viewer", "vic"))
    assert answer.status_code == 403
    (row,) = await rows(audited)
    assert (row["kind"], row["actor"], row["route"]) == ("refusal", "vic", "/api/audit.csv")


async def test_csv_export_escapes_formulas(audited):
    audit = audited.app.state.audit
    await audit.decision(action="user.rename", actor=None, actor_user="=HYPERLINK(\"http://evil\",\"x\")",
                         target_type="user", target_id="@SUM(A1)", before={"name": "+1"},
                         after={"name": "a,b\"c"}, comment="-2+3\nsecond line")
    await audit.decision(action="token.revoke", actor=None, actor_user="ada", target_type="token", target_id="t-1")
    answer = await audited.client.get("/api/audit.csv", params={"action": "user."},
                                      headers=audited.headers("admin", "root"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    header, *records = list(csv.reader(io.StringIO(answer.text)))
    assert header[:3] == ["id", "at", "kind"] and "user" in header and "comment" in header
    assert len(records) == 1  # the filter holds
    record = dict(zip(header, records[0]))
    assert record["user"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert record["target_id"] == "'@SUM(A1)"
    assert record["comment"] == "'-2+3\nsecond line"
    assert record["after"] == '{"name": "a,b\\"c"}'
    for cell in records[0]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    # who exported what is itself recorded
    (export,) = await rows(audited, "action = 'audit.export'")
    assert export["actor"] == "root" and export["after"] == {"action": "user."}


async def test_csv_export_streams_many_rows(audited):
    audit = audited.app.state.audit
    for i in range(2500):  # more than one cursor batch
        await audit.record(make_row(at=datetime.now(timezone.utc), kind="request", actor="kim", status=200,
                                    comment=f"=row {i}"))
    answer = await audited.client.get("/api/audit.csv", params={"kind": "request", "status": 200},
                                      headers=audited.headers("admin", "root"))
    assert answer.status_code == 200
    assert len(list(csv.reader(io.StringIO(answer.text)))) == 2501


async def test_rows_queued_at_exit_are_flushed_and_a_bad_row_holds_back_no_other(audited, caplog):
    from services.gateway.audit import AuditLog

    pool = audited.platform.pool
    async with AuditLog(pool, audited.settings, flush_seconds=3600) as audit:  # nothing flushes on its own
        for i in range(5):
            await audit.record(make_row(kind="request", actor="kim", target_id=f"S-{i}", status=200))
        await audit.record(make_row(kind="bogus", actor="kim", target_id="S-bad"))  # the table's CHECK refuses it
        assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE target_id LIKE 'S-%'") == 5
    assert "audit row NOT stored" in caplog.text and "S-bad" in caplog.text  # lost, but never silently


async def test_a_full_queue_writes_synchronously(audited):
    audit = audited.app.state.audit
    audit.max_pending = 0  # every row goes straight to the database
    await audited.client.post("/api/audit-probe/things/F-1", headers=audited.headers("researcher"))
    assert await audited.platform.pool.fetchval("SELECT count(*) FROM audit_log") == 1  # no flush needed


async def test_the_gateways_own_routes_leave_one_request_row_and_their_decision(gateway):
    admin = gateway.headers("admin", "root")
    created = await gateway.client.post("/api/users", headers=admin, json={
        "id": "kim", "display_name": "Kim", "role": "researcher", "password": "a long enough password 1"})
    assert created.status_code == 201, created.text
    deactivated = await gateway.client.post("/api/users/kim/deactivate", headers=admin)
    assert deactivated.status_code == 200, deactivated.text
    wrong = await gateway.client.post("/api/auth/login", json={"user": "kim", "password": "not the password!!"})
    assert wrong.status_code == 401
    requests = await rows(gateway, "kind = 'request'")
    assert [(r["method"], r["route"], r["status"]) for r in requests] == [
        ("POST", "/api/users", 201), ("POST", "/api/users/{user_id}/deactivate", 200)]  # the login: its decision only
    decisions = await rows(gateway, "kind = 'decision'")
    assert [(d["action"], d["actor"], d["outcome"]) for d in decisions] == [
        ("user.create", "root", "ok"), ("user.deactivate", "root", "ok"), ("auth.login", "kim", "refused")]
    assert decisions[1]["before"]["active"] is True and decisions[1]["after"]["active"] is False
    assert decisions[1]["request_id"] == requests[1]["request_id"] == deactivated.headers["x-request-id"]
    assert decisions[1]["trace_id"] == requests[1]["trace_id"]


async def test_a_login_the_accounts_code_does_not_audit_leaves_a_request_row(gateway):
    """A login refused before the accounts code ran (422: a malformed body) still leaves a record; the
    login's 200 and 401 leave only their decision."""
    bad = await gateway.client.post("/api/auth/login", json={"user": "kim"})
    assert bad.status_code == 422
    wrong = await gateway.client.post("/api/auth/login", json={"user": "kim", "password": "not the password!!"})
    assert wrong.status_code == 401
    requests = await rows(gateway, "kind = 'request' AND path = '/api/auth/login'")
    assert [(r["method"], r["status"], r["outcome"]) for r in requests] == [("POST", 422, "refused")]
    assert requests[0]["request_id"] == bad.headers["x-request-id"]
