// QU-03 as the scheduler's PATCH /queue/{id} takes it: a move is "right before" the entry above or
// "right after" the entry below (pure; the scheduler decides and answers 409 when the queue moved meanwhile).
import type { QueueItem } from "../api/types";

export type Move = { before: string } | { after: string };

export function moveOf(items: QueueItem[], index: number, direction: "up" | "down"): Move | null {
  if (direction === "up") return index > 0 ? { before: items[index - 1].job_id } : null;
  return index < items.length - 1 ? { after: items[index + 1].job_id } : null;
}
