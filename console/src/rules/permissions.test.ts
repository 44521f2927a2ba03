import { mayApprove, mayCancel, mayReject, mayRunLoopTest } from "./permissions";
import type { ApprovalDetail, Me } from "../api/types";

const admin: Me = { user: "admin", display_name: "Admin", email: null, role: "admin", via: "session", kind: "person" };
const kim: Me = { ...admin, user: "kim", role: "researcher" };
const park: Me = { ...admin, user: "park", role: "viewer" };

function approval(overrides: Partial<ApprovalDetail> = {}): ApprovalDetail {
  return {
    workload_id: "W-1", app_id: "APP-1", spec_version: "1", name: "rl", requester: "kim", priority: "high",
    submitted_at: "2026-12-07T12:00:00Z", status: "pending", status_label: "대기", needs_approval: true,
    auto_approved: false, reasons: ["rl-agent: GPU 4 >= 4"], loop_test_status: "pending", test_run_id: null,
    decided_by: null, decided_at: null, resources: { gpuType: "A100", gpuCount: 4 }, warning: "테스트 필요",
    comment: null, approvable: false, workload: {},
    loop_test: { status: "pending", episodes: null, results: null, executedBy: null, executedAt: null },
    ...overrides,
  };
}

test("approve stays disabled with 테스트 필요 until the loop test passed, even for an admin", () => {
  expect(mayApprove(admin, approval())).toEqual({ reason: "why.testRequired" });
  const running = approval({ loop_test: { status: "running", episodes: 10, results: null, executedBy: "admin", executedAt: null } });
  expect(mayApprove(admin, running)).toEqual({ reason: "why.testRequired" });
  const failed = approval({ loop_test: { status: "failed", episodes: 10, results: {}, executedBy: "admin", executedAt: null } });
  expect(mayApprove(admin, failed)).toEqual({ reason: "why.testRequired" });
  const passed = approval({
    status: "awaiting approval", approvable: true, warning: null,
    loop_test: { status: "passed", episodes: 10, results: { convergence: true }, executedBy: "admin", executedAt: null },
  });
  expect(mayApprove(admin, passed)).toBeNull();
  expect(mayApprove(kim, passed)).toEqual({ reason: "why.adminOnly" });
  expect(mayApprove(admin, { ...passed, status: "approved", status_label: "승인" })).toEqual({ reason: "why.decided", values: { status: "승인" } });
  expect(mayApprove(admin, approval({ needs_approval: false }))).toEqual({ reason: "why.autoApproved" });
});

test("reject needs an admin and a comment that is not blank", () => {
  expect(mayReject(admin, approval(), "  ")).toEqual({ reason: "why.commentRequired" });
  expect(mayReject(admin, approval(), "too big")).toBeNull();
  expect(mayReject(kim, approval(), "too big")).toEqual({ reason: "why.adminOnly" });
});

test("the loop test: an admin or the requester, never a viewer, not while one runs", () => {
  expect(mayRunLoopTest(admin, approval())).toBeNull();
  expect(mayRunLoopTest(kim, approval())).toBeNull();
  expect(mayRunLoopTest({ ...kim, user: "lee" }, approval())).toEqual({ reason: "why.ownerOrAdmin", values: { owner: "kim" } });
  expect(mayRunLoopTest(park, approval())).toEqual({ reason: "why.viewerReadOnly" });
  const running = approval({ loop_test: { status: "running", episodes: 10, results: null, executedBy: "admin", executedAt: null } });
  expect(mayRunLoopTest(admin, running)).toEqual({ reason: "why.testRunning" });
});

test("cancel: the requester or an admin", () => {
  expect(mayCancel(kim, "kim")).toBeNull();
  expect(mayCancel(admin, "kim")).toBeNull();
  expect(mayCancel(park, "park")).toEqual({ reason: "why.viewerReadOnly" });
  expect(mayCancel({ ...kim, user: "lee" }, "kim")).toEqual({ reason: "why.ownerOrAdmin", values: { owner: "kim" } });
});
