"""The gateway in front of the running platform (issue 23): people log in there, every service answers
through it as the logged-in user, and every state-changing route leaves exactly one audit record."""
from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from services.kit.stack import SERVICES
from tests.e2e.conftest import bearer

MUTATING = ("post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def gateway(stack) -> str:
    return stack.gateway_url


@pytest.fixture(scope="module")
def admin(stack, gateway):
    """A browser-like admin session at the gateway (the stack's first admin)."""
    client = httpx.Client(base_url=gateway, timeout=30)
    login = client.post("/api/auth/login", json={"user": "admin", "password": stack.admin_password()})
    assert login.status_code == 200, login.text
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    yield client
    client.close()


def test_a_person_logs_in_and_the_services_answer_as_them(gateway, admin):
    user = f"res-{uuid.uuid4().hex[:6]}"
    created = admin.post("/api/users", json={"id": user, "display_name": "E2E Researcher", "role": "researcher",
                                             "kind": "person", "email": f"{user}@avatar.local",
                                             "password": "a long enough password"})
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=gateway, timeout=30) as browser:
        login = browser.post("/api/auth/login", json={"user": user, "password": "a long enough password"})
        assert login.status_code == 200
        assert browser.get("/api/auth/me").json()["role"] == "researcher"
        listed = browser.get("/api/trainer/training-requests")
        assert listed.status_code == 200, listed.text
        # a change without the CSRF header is refused at the door; with it, the service acts as the user
        assert browser.put("/api/approval/thresholds", json={}).status_code == 403
        refused = browser.put("/api/approval/thresholds", json={}, headers={"X-CSRF-Token": login.json()["csrf_token"]})
        assert refused.status_code == 403 and "researcher" in refused.text  # the service's own role check
    deactivated = admin.post(f"/api/users/{user}/deactivate")
    assert deactivated.status_code == 200, deactivated.text


def test_the_merged_document_names_every_services_routes(gateway):
    document = httpx.get(f"{gateway}/api/openapi.json", timeout=30).json()
    prefixes = {path.split("/")[2] for path in document["paths"] if path.startswith("/api/")}
    assert set(SERVICES) <= prefixes
    assert not document["info"].get("x-unavailable")


def test_every_mutating_route_of_every_service_leaves_exactly_one_audit_record(gateway, admin, settings):
    """Each POST/PUT/PATCH/DELETE of the six services, called once through the gateway (as a viewer with
    made-up ids and empty bodies the services refuse them; a refusal is a request too), is in the audit log
    once, with its route template and outcome."""
    document = httpx.get(f"{gateway}/api/openapi.json", timeout=30).json()
    caller = f"auditor-{uuid.uuid4().hex[:6]}"
    headers = bearer(settings, caller, "viewer")
    sent: dict[str, tuple[str, str, int]] = {}
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for template, operations in document["paths"].items():
            service = template.split("/")[2] if template.startswith("/api/") else None
            if service not in SERVICES:
                continue
            for method in MUTATING:
                if method not in operations:
                    continue
                path = re.sub(r"\{\w+\}", "NOPE-1", template)
                response = client.request(method.upper(), path, json={}, headers=headers)
                assert response.status_code < 500, (method, path, response.status_code, response.text)
                sent[response.headers["x-request-id"]] = (method.upper(), template, response.status_code)
    assert len(sent) >= 30  # the six services have well over thirty state-changing routes

    by_request = _requests_of(admin, caller, set(sent))
    missing = [sent[request_id] for request_id in sent if request_id not in by_request]
    assert not missing, f"no audit record for {missing[:5]} (+{max(0, len(missing) - 5)})"
    for request_id, (method, template, status) in sent.items():
        records = by_request[request_id]
        assert len(records) == 1, (method, template, records)
        record = records[0]
        assert (record["method"], record["route"], record["status"]) == (method, template, status)
        assert record["user"] == caller and record["role"] == "viewer"


def test_a_change_that_succeeds_leaves_its_request_and_the_services_decision(gateway, admin):
    """A successful change through the gateway: one request record, and the deciding service's own
    record with before/after, joined by the request id the gateway gave it."""
    current = admin.get("/api/approval/thresholds")
    assert current.status_code == 200, current.text
    before = {"gpu_count": current.json()["gpu_count"], "memory": current.json()["memory"]}
    changed = admin.put("/api/approval/thresholds", json={**before, "gpu_count": before["gpu_count"] + 1})
    assert changed.status_code == 200, changed.text
    assert admin.put("/api/approval/thresholds", json=before).status_code == 200  # as the other tests expect
    request_id = changed.headers["x-request-id"]
    rows = _requests_of(admin, "admin", {request_id}, kinds=("request", "refusal", "decision"))[request_id]
    kinds = sorted(row["kind"] for row in rows)
    assert kinds.count("request") == 1, rows
    deadline = time.monotonic() + 15
    while not [row for row in rows if row["kind"] == "decision"] and time.monotonic() < deadline:
        time.sleep(0.3)  # the service's record comes through its outbox and the broker
        rows = _requests_of(admin, "admin", {request_id}, kinds=("request", "decision"))[request_id]
    decisions = [row for row in rows if row["kind"] == "decision"]
    assert len(decisions) == 1, rows
    decision = decisions[0]
    assert (decision["action"], decision["producer"]) == ("approval.threshold_change", "approval")
    assert decision["before"]["gpu_count"] == before["gpu_count"]
    assert decision["after"]["gpu_count"] == before["gpu_count"] + 1


def _requests_of(admin: httpx.Client, user: str, request_ids: set[str],
                 kinds: tuple[str, ...] = ("request", "refusal"), timeout: float = 15) -> dict[str, list[dict]]:
    """The audit rows of `user` by request id, once every one of `request_ids` has shown up (rows are
    written off the request path, within a fraction of a second)."""
    deadline = time.monotonic() + timeout
    while True:
        by_request: dict[str, list[dict]] = {}
        for row in _audit_rows(admin, user):
            if row["kind"] in kinds:
                by_request.setdefault(row["request_id"], []).append(row)
        if request_ids <= by_request.keys() or time.monotonic() > deadline:
            return by_request
        time.sleep(0.3)


def _audit_rows(admin: httpx.Client, user: str) -> list[dict]:
    rows, cursor = [], None
    while True:
        params = {"user": user, "limit": 500, **({"before_id": cursor} if cursor else {})}
        page = admin.get("/api/audit", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        items = body["items"] if isinstance(body, dict) else body
        rows.extend(items)
        cursor = body.get("next_before_id") if isinstance(body, dict) else None
        if not cursor or not items:
            return rows
