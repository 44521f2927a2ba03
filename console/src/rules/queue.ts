// QU-03 as the scheduler's PATCH /queue/{id} takes it: a move is "right before" the entry above or
// "right after" the entry below (pure; the scheduler decides and answers 409 when the queue moved meanwhile).
import type { QueueItem } from "../api/types";

export type Move = { before: string } | { after: string };

export function moveOf(items: QueueItem[], index: number, direction: "up" | "down"): Move | null {
  if (direction === "up") return index > 0 ? { before: items[index - 1].job_id } : null;
  return index < items.length - 1 ? { after: items[index + 1].job_id } : null;
}

/** A row dropped on another (admin drag-to-reorder): dragged down it goes right after the target, dragged up
 * right before it; onto itself, nothing. */
export function dropOf(from: number, to: number, target: Pick<QueueItem, "job_id">): Move | null {
  if (from === to) return null;
  return from < to ? { after: target.job_id } : { before: target.job_id };
}

/** The move one step up/down given the rows around it (a virtualised list has only the pages in view). */
export function stepOf(above: QueueItem | undefined, below: QueueItem | undefined, direction: "up" | "down"): Move | null {
  if (direction === "up") return above ? { before: above.job_id } : null;
  return below ? { after: below.job_id } : null;
}
