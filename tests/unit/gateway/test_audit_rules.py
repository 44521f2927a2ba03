"""The audit log's pure rules: what is recorded, field bounds, search SQL and CSV cells."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest

from services.gateway import audit_rules as rules
from services.gateway.audit_rules import AuditQuery


@pytest.mark.parametrize("method,path,status,kind", [
    ("POST", "/api/trainer/training-requests", 201, "request"),
    ("DELETE", "/api/users/kim", 204, "request"),
    ("PATCH", "/api/users/kim", 422, "request"),       # a mutating request is recorded whatever its outcome
    ("PUT", "/api/approval/threshold", 500, "request"),
    ("GET", "/api/trainer/training-requests", 200, None),
    ("GET", "/api/trainer/training-requests", 404, None),
    ("GET", "/api/audit", 401, "refusal"),
    ("GET", "/api/audit", 403, "refusal"),
    ("GET", "/api/trainer/training-requests", 429, "refusal"),
    ("POST", "/api/users", 403, "refusal"),
    ("POST", "/api/auth/login", 200, None),            # the accounts code audits logins with their user
    ("POST", "/api/auth/login", 401, None),
    ("POST", "/api/auth/login", 429, "refusal"),       # the address limiter refused it before the login code ran
    ("POST", "/api/auth/login", 422, "request"),       # answers the login code does not audit leave a request row
    ("POST", "/api/auth/login", 500, "request"),
    ("POST", "/api/auth/logout", 204, "request"),
    ("POST", "/healthz", 200, None),                   # not under /api/
    ("GET", "/metrics", 403, "refusal"),
    ("OPTIONS", "/api/users", 200, None),
])
def test_recorded_kind(method, path, status, kind):
    assert rules.recorded_kind(method, path, status) == kind


def test_clip_bounds_and_drops_nul():
    assert rules.clip(None, 5) is None
    assert rules.clip("abc", 5) == "abc"
    assert rules.clip("abcdefgh", 5) == "abcd…"
    assert len(rules.clip("x" * 10_000, rules.MAX_USER_AGENT)) == rules.MAX_USER_AGENT
    assert rules.clip("a\x00b", 5) == "ab"


def test_bounded_json_keeps_small_and_marks_large():
    assert rules.bounded_json(None) is None
    assert rules.bounded_json({"priority": 3, "at": datetime(2026, 1, 1, tzinfo=timezone.utc)}) == {
        "priority": 3, "at": "2026-01-01 00:00:00+00:00"}
    big = rules.bounded_json({"blob": "x" * (rules.MAX_JSON_BYTES + 1)})
    assert big["truncated"] is True and big["bytes"] > rules.MAX_JSON_BYTES
    assert rules.bounded_json({"bad": "a\x00b"})["truncated"] is True  # jsonb cannot hold \u0000


def test_target_ids_and_target():
    ids = rules.bounded_target_ids({"user_id": "kim", "token_id": "t-1"})
    assert ids == {"user_id": "kim", "token_id": "t-1"}
    assert rules.target_of(ids) == ("token", "t-1")
    assert rules.target_of({"workload_id": "WL-1"}) == ("workload", "WL-1")
    assert rules.target_of({"alias": "production"}) == ("alias", "production")
    assert rules.target_of(None) == (None, None)
    many = rules.bounded_target_ids({f"p{i}": "v" * 1000 for i in range(40)})
    assert len(many) == rules.MAX_TARGET_IDS
    assert all(len(v) <= rules.MAX_TARGET_ID for v in many.values())


def test_outcome_and_trace_id():
    assert [rules.outcome_of(s) for s in (200, 302, 403, 429, 500)] == ["ok", "ok", "refused", "refused", "failed"]
    assert rules.trace_id_hex(0) is None
    assert rules.trace_id_hex(255) == "0" * 30 + "ff"
    assert rules.valid_trace_id("ab" * 16) == "ab" * 16
    assert rules.valid_trace_id("nothex") is None


def test_where_clause_empty_and_full():
    assert rules.where_clause(AuditQuery()) == ("", [])
    since, until = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    sql, args = rules.where_clause(AuditQuery(user="kim", action="approval.", target_type="workload",
                                              target_id="WL-1", kind="decision", status=200, outcome="ok",
                                              since=since, until=until, before_id=42))
    assert sql == (" WHERE actor = $1 AND action LIKE $2 AND target_type = $3 AND target_id = $4 AND kind = $5"
                   " AND status = $6 AND outcome = $7 AND at >= $8 AND at < $9"
                   " AND (at, id) < (SELECT c.at, c.id FROM audit_log c WHERE c.id = $10)")
    assert args == ["kim", "approval.%", "workload", "WL-1", "decision", 200, "ok", since, until, 42]


def test_action_prefix_is_literal():
    assert rules.like_prefix("a_b%c\\") == "a\\_b\\%c\\\\%"


@pytest.mark.parametrize("value,cell", [
    (None, ""),
    (42, "42"),
    (-3, "-3"),  # a number we wrote is not a formula
    (True, "true"),
    ("plain", "plain"),
    ("=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"),
    ("+1+1", "'+1+1"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "'\tcmd"),
    ("\r=1", "'\r=1"),
    ("  =1+1", "'  =1+1"),
    ("a=b", "a=b"),
    ({"k": "=1"}, '{"k": "=1"}'),
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "2026-01-02T03:04:05+00:00"),
])
def test_csv_cell(value, cell):
    assert rules.csv_cell(value) == cell


def test_csv_cells_survive_the_csv_writer():
    nasty = ['=cmd|" /C calc"!A0', 'comma, "quote"\nnewline', "-1"]
    buffer = io.StringIO()
    csv.writer(buffer).writerow([rules.csv_cell(v) for v in nasty])
    (row,) = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert row == ["'" + nasty[0], nasty[1], "'-1"]
    assert not any(cell.startswith(rules.FORMULA_TRIGGERS) for cell in row)
