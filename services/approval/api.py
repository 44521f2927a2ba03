"""Approval HTTP API: thresholds, requests, the minimum run test, attach, approve and reject (AP-01…AP-05)."""
from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import datetime, timezone
from typing import Annotated, AsyncIterator

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from services.approval import domain, store
from services.approval.events import count, emit_recorded
from services.approval.settings import ApprovalSettings
from services.approval.schemas import (ApprovalDetail, ApprovalSummary, AttachBody, LoopTestBody, RejectBody,
                                     TestRunView, ThresholdsBody, ThresholdsView, detail, run_view, summary_row)
from services.kit.auth import Admin, Principal, Reader, Writer
from services.kit.errors import Invalid, NotFound
from services.kit.paging import Page, Paging
from services.kit.service import Platform, PlatformDep
from services.kit.telemetry import continue_workload_trace

router = APIRouter()
log = logging.getLogger(__name__)
TEST_CRITERION = ("RL passes when the reward converges: over the last third of the episodes (at least 3) the "
                  "average has not fallen below the first third's, and the rewards stay within 10% of the reward "
                  "scale around their trend. A general workload passes when every run succeeds.")


async def _settings(request: Request) -> ApprovalSettings:
    return request.app.state.settings


SettingsDep = Annotated[ApprovalSettings, Depends(_settings)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


@contextlib.asynccontextmanager
async def _changing(platform: Platform, workload_id: str, action: str) -> AsyncIterator[tuple[asyncpg.Connection,
                                                                                              domain.ApprovalRequest]]:
    """Lock one approval request; on success write it and emit what it recorded, in one transaction.

    The decision is a span `approval <action>` in the workload's trace (a child of the consumer span of
    the last event about the workload here), so the events it emits continue the request's trace; the
    admin's HTTP request keeps its own trace and the two spans link to each other."""
    emitted: list[tuple[str, BaseModel]] = []
    async with platform.transaction() as conn, continue_workload_trace(conn, f"approval {action}", workload_id):
        request = await store.find_request(conn, workload_id, for_update=True)
        if request is None:
            raise NotFound(f"approval request {workload_id} not found")
        yield conn, request
        if request.events:
            await store.save_request(conn, request)
            emitted = await emit_recorded(request, lambda event_type, payload, correlation_id: platform.outbox.emit(
                conn, event_type, payload, correlation_id=correlation_id))
    for event_type, payload in emitted:
        count(event_type, payload)
        log.info("%s: %s", workload_id, event_type)


def _require_developer(request: domain.ApprovalRequest, principal: Principal, action: str) -> None:
    if not request.may_act(principal.user, principal.is_admin):
        raise HTTPException(403, f"only an admin or the requester ({request.workload.requester}) may {action}")


@router.get("/thresholds", tags=["thresholds"], response_model=ThresholdsView,
            summary="The approval thresholds: a component at or above either needs an admin")
async def get_thresholds(platform: PlatformDep, _: Reader) -> ThresholdsView:
    return ThresholdsView(**dict(await store.threshold_row(platform.pool)))


@router.put("/thresholds", tags=["thresholds"], response_model=ThresholdsView,
            summary="Change the thresholds (admin); requests already received keep their verdict")
async def put_thresholds(body: ThresholdsBody, platform: PlatformDep, principal: Admin) -> ThresholdsView:
    await store.set_thresholds(platform.pool, domain.Thresholds(gpu_count=body.gpu_count, memory=body.memory),
                               principal.user)
    return ThresholdsView(**dict(await store.threshold_row(platform.pool)))


@router.get("/approvals", tags=["approvals"], response_model=Page[ApprovalSummary],
            summary="Approval requests, newest first (AP-01)")
async def list_approvals(platform: PlatformDep, principal: Reader, paging: Paging,
                         status: Annotated[str | None, Query(description=" | ".join(domain.STATUSES))] = None,
                         app_id: Annotated[str | None, Query(max_length=64)] = None,
                         mine: bool = False) -> Page[ApprovalSummary]:
    if status is not None and status not in domain.STATUSES:
        raise Invalid(f"unknown status {status!r}: use one of {', '.join(domain.STATUSES)}", code="unknown_status")
    rows, total = await store.list_requests(platform.pool, status=status, app_id=app_id,
                                            requester=principal.user if mine else None,
                                            limit=paging.page_size, offset=paging.offset)
    return Page.of([summary_row(row) for row in rows], total, paging)


@router.get("/approvals/{workload_id}", tags=["approvals"], response_model=ApprovalDetail,
            summary="Spec, requested resources, requester and loopTest of one request (AP-02, AP-04)")
async def get_approval(workload_id: str, platform: PlatformDep, _: Reader) -> ApprovalDetail:
    request = await store.find_request(platform.pool, workload_id)
    if request is None:
        raise NotFound(f"approval request {workload_id} not found")
    return detail(request)


@router.post("/approvals/{workload_id}/loop-test", status_code=202, tags=["loop test"],
             response_model=ApprovalDetail, description=TEST_CRITERION,
             summary="Run the minimum run test (AP-03; an admin or the requester)",
             responses={409: {"description": "auto-approved, already decided, or a test is still running"}})
async def run_loop_test(workload_id: str, platform: PlatformDep, settings: SettingsDep, principal: Writer,
                        body: LoopTestBody | None = None) -> ApprovalDetail:
    async with _changing(platform, workload_id, "loop-test") as (conn, request):
        _require_developer(request, principal, "run its loop test")
        rl = domain.loop_test_mode(request.workload) == "rl"
        episodes = (body.episodes if body and body.episodes else
                    settings.loop_test_rl_episodes if rl else settings.loop_test_general_runs)
        if rl and episodes < 3:
            raise Invalid("an RL loop test needs at least 3 episodes to judge convergence", code="too_few_episodes")
        run = request.start_loop_test(test_run_id="LT-" + secrets.token_hex(4).upper(), episodes=episodes,
                                      by=principal.user, now=_now())
        await store.insert_test_run(conn, run)
    return detail(request)


@router.post("/approvals/{workload_id}/loop-test/attach", tags=["loop test"], response_model=ApprovalDetail,
             summary="Attach an earlier passed test run of the same App spec version (the requester or an admin)",
             responses={409: {"description": "the run has not passed, or was for another App spec version"}})
async def attach_test_run(workload_id: str, body: AttachBody, platform: PlatformDep,
                          principal: Writer) -> ApprovalDetail:
    async with _changing(platform, workload_id, "attach") as (conn, request):
        _require_developer(request, principal, "attach a test result")
        run = await store.find_test_run(conn, body.test_run_id)
        if run is None:
            raise NotFound(f"test run {body.test_run_id} not found")
        request.attach(run)
    return detail(request)


@router.post("/approvals/{workload_id}/approve", tags=["decisions"], response_model=ApprovalDetail,
             summary="Approve (admin); only after the loop test passed, else 409 \"테스트 필요\" (AP-05)",
             responses={409: {"description": "테스트 필요: the loop test has not passed; or already decided"}})
async def approve(workload_id: str, platform: PlatformDep, principal: Admin) -> ApprovalDetail:
    async with _changing(platform, workload_id, "approve") as (_, request):
        request.approve(principal.user, _now())
    return detail(request)


@router.post("/approvals/{workload_id}/reject", tags=["decisions"], response_model=ApprovalDetail,
             summary="Reject with a comment (admin; AP-05)",
             responses={409: {"description": "already approved or cancelled"}})
async def reject(workload_id: str, body: RejectBody, platform: PlatformDep, principal: Admin) -> ApprovalDetail:
    async with _changing(platform, workload_id, "reject") as (_, request):
        request.reject(principal.user, body.comment, _now())
    return detail(request)


@router.get("/test-runs", tags=["loop test"], response_model=Page[TestRunView],
            summary="Stored loop test runs with their resource snapshots (ST-03)")
async def list_test_runs(platform: PlatformDep, _: Reader, paging: Paging,
                         app_id: Annotated[str | None, Query(max_length=64)] = None,
                         workload_id: Annotated[str | None, Query(max_length=64)] = None,
                         status: Annotated[str | None, Query(pattern="^(running|passed|failed)$")] = None,
                         ) -> Page[TestRunView]:
    runs, total = await store.list_test_runs(platform.pool, app_id=app_id, workload_id=workload_id, status=status,
                                             limit=paging.page_size, offset=paging.offset)
    return Page.of([run_view(run) for run in runs], total, paging)


@router.get("/test-runs/{test_run_id}", tags=["loop test"], response_model=TestRunView, summary="One test run")
async def get_test_run(test_run_id: str, platform: PlatformDep, _: Reader) -> TestRunView:
    run = await store.find_test_run(platform.pool, test_run_id)
    if run is None:
        raise NotFound(f"test run {test_run_id} not found")
    return run_view(run)
