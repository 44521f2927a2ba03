// Which cached queries an event makes stale: a pure table from event type to the query-key roots
// (each screen's queries start with the service they read: ["trainer", ...], ["scheduler", ...]).

export type KeyRoot = "trainer" | "approval" | "scheduler" | "models";

const ALL: KeyRoot[] = ["trainer", "approval", "scheduler", "models"];

// the saga's streamed event types (services/gateway/visibility.py RULES)
export const STREAMED_TYPES = [
  "training.requested",
  "approval.required",
  "looptest.requested",
  "looptest.completed",
  "looptest.passed",
  "looptest.failed",
  "workload.approved",
  "workload.rejected",
  "workload.cancel_requested",
  "workload.queued",
  "workload.started",
  "workload.completed",
  "workload.failed",
  "workload.cancelled",
  "model.stored",
  "model.store_failed",
  "model.alias_moved",
] as const;

const TABLE: Record<string, KeyRoot[]> = {
  "training.requested": ["trainer", "approval"],
  "approval.required": ["trainer", "approval"],
  "looptest.requested": ["trainer", "approval", "scheduler"],
  "looptest.completed": ["trainer", "approval", "scheduler"],
  "looptest.passed": ["trainer", "approval"],
  "looptest.failed": ["trainer", "approval"],
  "workload.approved": ["trainer", "approval", "scheduler"],
  "workload.rejected": ["trainer", "approval"],
  "workload.cancel_requested": ["trainer", "approval", "scheduler"],
  "workload.queued": ["trainer", "scheduler"],
  "workload.started": ["trainer", "scheduler"],
  "workload.completed": ["trainer", "scheduler", "models"],
  "workload.failed": ["trainer", "scheduler"],
  "workload.cancelled": ["trainer", "approval", "scheduler"],
  "model.stored": ["trainer", "models"],
  "model.store_failed": ["trainer", "models"],
  "model.alias_moved": ["models"],
};

/** The roots an event of `type` makes stale; an unknown type refreshes everything (better than missing one). */
export function rootsFor(type: string): KeyRoot[] {
  return TABLE[type] ?? ALL;
}
