// AU-04: the audit log's filter form ⇄ the URL ⇄ GET /api/audit's query (services/gateway/audit.py
// _search_query). Pure. Times are typed in the browser's local time (datetime-local) and sent as UTC
// ISO 8601 — the gateway refuses a time without a zone.
import type { Query } from "../../api/client";
import type { AuditKind, AuditOutcome } from "../../api/admin";

export interface AuditFilters {
  user: string;
  action: string;
  targetType: string;
  targetId: string;
  kind: AuditKind | "";
  outcome: AuditOutcome | "";
  /** "YYYY-MM-DDTHH:mm" in local time, or "" */
  from: string;
  to: string;
}

export const NO_FILTERS: AuditFilters = { user: "", action: "", targetType: "", targetId: "", kind: "", outcome: "", from: "", to: "" };
export const KINDS: AuditKind[] = ["decision", "request", "refusal"];
export const OUTCOMES: AuditOutcome[] = ["ok", "refused", "failed"];

// the form's field ⇄ the query parameter the gateway reads (and the URL keeps)
const PARAMS: Record<keyof AuditFilters, string> = {
  user: "user", action: "action", targetType: "target_type", targetId: "target_id", kind: "kind", outcome: "outcome",
  from: "from", to: "to",
};

export class FilterError extends Error {}

/** a datetime-local value as UTC ISO 8601; "" stays undefined */
export function utc(local: string, field: string): string | undefined {
  if (!local.trim()) return undefined;
  const moment = new Date(local);
  if (Number.isNaN(moment.getTime())) throw new FilterError(field);
  return moment.toISOString();
}

/** the query for GET /api/audit and /api/audit.csv: trimmed, empty fields left out */
export function auditQuery(filters: AuditFilters): Query {
  const query: Query = {};
  for (const field of ["user", "action", "targetType", "targetId", "kind", "outcome"] as const) {
    const value = filters[field].trim();
    if (value) query[PARAMS[field]] = value;
  }
  const from = utc(filters.from, "from");
  const to = utc(filters.to, "to");
  if (from && to && from >= to) throw new FilterError("order");
  if (from) query.from = from;
  if (to) query.to = to;
  return query;
}

/** the filters kept in the page's URL (so a filtered view can be shared and survives a reload) */
export function filtersFrom(params: URLSearchParams): AuditFilters {
  const filters = { ...NO_FILTERS };
  for (const [field, name] of Object.entries(PARAMS) as [keyof AuditFilters, string][]) {
    const value = params.get(name) ?? "";
    if (field === "kind") filters.kind = (KINDS as string[]).includes(value) ? (value as AuditKind) : "";
    else if (field === "outcome") filters.outcome = (OUTCOMES as string[]).includes(value) ? (value as AuditOutcome) : "";
    else filters[field] = value;
  }
  return filters;
}

export function paramsOf(filters: AuditFilters): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [field, name] of Object.entries(PARAMS) as [keyof AuditFilters, string][]) {
    const value = filters[field].trim();
    if (value) params[name] = value;
  }
  return params;
}
