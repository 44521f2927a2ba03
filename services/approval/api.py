"""Approval HTTP API: thresholds, requests, the minimum run test, attach, approve and reject (AP-01…AP-05)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.approval import commands, domain, store
from services.approval.schemas import (ApprovalDetail, ApprovalSummary, AttachBody, LoopTestBody, RejectBody,
                                     TestRunView, ThresholdsBody, ThresholdsView, detail, run_view, summary_row)
from services.kit.auth import Admin, Reader, Writer
from services.kit.errors import Invalid, NotFound
from services.kit.paging import Page, Paging
from services.kit.service import MessageBusDep, PlatformDep

router = APIRouter()
TEST_CRITERION = ("RL passes when the reward converges: over the last third of the episodes (at least 3) the "
                  "average has not fallen below the first third's, and the rewards stay within 10% of the reward "
                  "scale around their trend. A general workload passes when every run succeeds.")


@router.get("/thresholds", tags=["thresholds"], response_model=ThresholdsView,
            summary="The approval thresholds: a component at or above either needs an admin")
async def get_thresholds(platform: PlatformDep, _: Reader) -> ThresholdsView:
    return ThresholdsView(**dict(await store.threshold_row(platform.pool)))


@router.put("/thresholds", tags=["thresholds"], response_model=ThresholdsView,
            summary="Change the thresholds (admin); requests already received keep their verdict")
async def put_thresholds(body: ThresholdsBody, platform: PlatformDep, bus: MessageBusDep,
                         principal: Admin) -> ThresholdsView:
    await bus.handle(commands.SetThresholds(gpu_count=body.gpu_count, memory=body.memory, by=principal.user,
                                            role=principal.role))
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
async def run_loop_test(workload_id: str, bus: MessageBusDep, principal: Writer,
                        body: LoopTestBody | None = None) -> ApprovalDetail:
    return detail(await bus.handle(commands.RunLoopTest(
        workload_id=workload_id, by=principal.user, is_admin=principal.is_admin,
        episodes=body.episodes if body else None, role=principal.role)))


@router.post("/approvals/{workload_id}/loop-test/attach", tags=["loop test"], response_model=ApprovalDetail,
             summary="Attach an earlier passed test run of the same App spec version (the requester or an admin)",
             responses={409: {"description": "the run has not passed, or was for another App spec version"}})
async def attach_test_run(workload_id: str, body: AttachBody, bus: MessageBusDep, principal: Writer) -> ApprovalDetail:
    return detail(await bus.handle(commands.AttachTestRun(
        workload_id=workload_id, test_run_id=body.test_run_id, by=principal.user, is_admin=principal.is_admin,
        role=principal.role)))


@router.post("/approvals/{workload_id}/approve", tags=["decisions"], response_model=ApprovalDetail,
             summary="Approve (admin); only after the loop test passed, else 409 \"테스트 필요\" (AP-05)",
             responses={409: {"description": "테스트 필요: the loop test has not passed; or already decided"}})
async def approve(workload_id: str, bus: MessageBusDep, principal: Admin) -> ApprovalDetail:
    return detail(await bus.handle(commands.ApproveRequest(workload_id=workload_id, by=principal.user,
                                                           role=principal.role)))


@router.post("/approvals/{workload_id}/reject", tags=["decisions"], response_model=ApprovalDetail,
             summary="Reject with a comment (admin; AP-05)",
             responses={409: {"description": "already approved or cancelled"}})
async def reject(workload_id: str, body: RejectBody, bus: MessageBusDep, principal: Admin) -> ApprovalDetail:
    return detail(await bus.handle(commands.RejectRequest(workload_id=workload_id, by=principal.user,
                                                          comment=body.comment, role=principal.role)))


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
