// BL-09: a connection the builder refused, shown on the canvas at the edge with the service's own message
// (docs/spec.md §13.2), until it is dismissed or times out; and 409 edit_conflict, when someone else edited first.
import { ApiError } from "../../../api/client";
import type { Edge } from "../../../api/builder";

export const REFUSAL_CODES = ["self_loop", "duplicate", "cycle"] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

export interface Refusal {
  id: string; // the refused edge's id on the canvas
  edge: Edge;
  code: RefusalCode;
  message: string;
}

function detailOf(error: unknown): { code?: unknown; message?: unknown; revision?: unknown } | null {
  if (!(error instanceof ApiError) || !error.body || typeof error.body !== "object") return null;
  const detail = (error.body as { detail?: unknown }).detail;
  return detail && typeof detail === "object" ? (detail as Record<string, unknown>) : null;
}

/** the refusal an add-edge answer carries (422 with detail.code self_loop, duplicate or cycle), else null */
export function refusalOf(error: unknown, edge: Edge): Refusal | null {
  const detail = detailOf(error);
  if (!detail || (error as ApiError).status !== 422) return null;
  const code = detail.code as RefusalCode;
  if (!REFUSAL_CODES.includes(code) || typeof detail.message !== "string") return null;
  return { id: `refused:${edge.from}->${edge.to}`, edge, code, message: detail.message };
}

/** a 409 edit_conflict: someone else edited the App since the revision this client sent */
export function conflictOf(error: unknown): { message: string; revision: number | null } | null {
  const detail = detailOf(error);
  if (!detail || (error as ApiError).status !== 409 || detail.code !== "edit_conflict") return null;
  return { message: String(detail.message), revision: typeof detail.revision === "number" ? detail.revision : null };
}

/** the refusals shown: a new one for the same edge replaces the old; at most a few at once */
export function showRefusal(shown: Refusal[], refusal: Refusal, limit = 3): Refusal[] {
  return [...shown.filter((r) => r.id !== refusal.id), refusal].slice(-limit);
}

export const dismissRefusal = (shown: Refusal[], id: string) => shown.filter((r) => r.id !== id);
