// What a role may do on the console's screens, and why not: pure rules that mirror the services' checks
// (services/kit/auth.py Admin / Writer / Reader), so a button is disabled with the reason instead of
// answering 403 after a click. The services still decide; these only explain.
import type { ApprovalDetail, Me, Role } from "../api/types";

/** a disabled control: the i18n key of the reason (and its values), or null when allowed */
export type Verdict = { reason: string; values?: Record<string, string> } | null;

const ALLOWED: Verdict = null;

export function adminOnly(role: Role | undefined): Verdict {
  return role === "admin" ? ALLOWED : { reason: "why.adminOnly" };
}

export function writer(role: Role | undefined): Verdict {
  return role === "admin" || role === "researcher" ? ALLOWED : { reason: "why.viewerReadOnly" };
}

/** cancel a workload or request: its requester or an admin */
export function mayCancel(me: Me | undefined, requester: string): Verdict {
  if (!me) return { reason: "why.viewerReadOnly" };
  if (me.role === "viewer") return { reason: "why.viewerReadOnly" };
  if (me.role === "admin" || me.user === requester) return ALLOWED;
  return { reason: "why.ownerOrAdmin", values: { owner: requester } };
}

const DECIDED = new Set(["approved", "rejected", "cancelled"]);

/** AP-03: run the loop test (an admin or the requester) of an undecided request that needs approval */
export function mayRunLoopTest(me: Me | undefined, approval: ApprovalDetail): Verdict {
  if (!approval.needs_approval) return { reason: "why.autoApproved" };
  if (DECIDED.has(approval.status)) return { reason: "why.decided", values: { status: approval.status_label } };
  if (!me || me.role === "viewer") return { reason: "why.viewerReadOnly" };
  if (me.role !== "admin" && me.user !== approval.requester) {
    return { reason: "why.ownerOrAdmin", values: { owner: approval.requester } };
  }
  if (approval.loop_test?.status === "running") return { reason: "why.testRunning" };
  return ALLOWED;
}

/** AP-05: approve only as an admin, only an undecided request, and only once its loop test passed ("테스트 필요") */
export function mayApprove(me: Me | undefined, approval: ApprovalDetail): Verdict {
  if (!approval.needs_approval) return { reason: "why.autoApproved" };
  if (DECIDED.has(approval.status)) return { reason: "why.decided", values: { status: approval.status_label } };
  if (approval.loop_test?.status !== "passed" || !approval.approvable) return { reason: "why.testRequired" };
  if (!me || me.role !== "admin") return { reason: "why.adminOnly" };
  return ALLOWED;
}

/** AP-05: an admin deciding an undecided request that needs approval (the comment aside) */
export function mayDecide(me: Me | undefined, approval: ApprovalDetail): Verdict {
  if (!approval.needs_approval) return { reason: "why.autoApproved" };
  if (DECIDED.has(approval.status)) return { reason: "why.decided", values: { status: approval.status_label } };
  if (!me || me.role !== "admin") return { reason: "why.adminOnly" };
  return ALLOWED;
}

/** AP-05: reject as an admin an undecided request, only with a comment */
export function mayReject(me: Me | undefined, approval: ApprovalDetail, comment: string): Verdict {
  return mayDecide(me, approval) ?? (comment.trim() ? ALLOWED : { reason: "why.commentRequired" });
}
