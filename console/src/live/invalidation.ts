// Which cached queries an event makes stale: a pure table from event type to the query-key roots
// (each screen's queries start with the service they read: ["trainer", ...], ["scheduler", ...]).

export type KeyRoot = "trainer" | "approval" | "scheduler" | "models" | "library" | "builder";

const ALL: KeyRoot[] = ["trainer", "approval", "scheduler", "models", "library", "builder"];

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
  "queue.changed",
  "node.status_changed",
  "workload.started",
  "workload.completed",
  "workload.failed",
  "workload.cancelled",
  "model.stored",
  "model.store_failed",
  "model.alias_moved",
  "component.registered",
  "component.updated",
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
  "node.status_changed": ["scheduler"], // a drain or activate: nodes, resources and wait reasons
  "queue.changed": ["scheduler"], // an admin's move or priority change: the queue's order and wait reasons
  "workload.started": ["trainer", "scheduler"],
  "workload.completed": ["trainer", "scheduler", "models"],
  "workload.failed": ["trainer", "scheduler"],
  "workload.cancelled": ["trainer", "approval", "scheduler"],
  "model.stored": ["trainer", "models"],
  "model.store_failed": ["trainer", "models"],
  "model.alias_moved": ["models"],
  // the library's lists and details, and the builder's palette (its queries are library's too); not the
  // canvas's App, which holds someone's unsaved edits
  "component.registered": ["library"],
  "component.updated": ["library"],
};

/** The roots an event of `type` makes stale; an unknown type refreshes everything (better than missing one). */
export function rootsFor(type: string): KeyRoot[] {
  return TABLE[type] ?? ALL;
}
