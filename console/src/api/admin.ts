// The gateway's users (AU-02), API tokens and audit log (AU-04), and the approval service's thresholds, as
// services/gateway/accounts_api.py, tokens_api.py, audit.py and services/approval/schemas.py answer them.
// Keys start with "admin": no live event carries these (audit.recorded is not streamed), so they refresh
// after this console's own changes.
import { api, get, patch, post, withQuery, type Query } from "./client";
import type { Page, Role } from "./types";

export interface UserView {
  id: string;
  display_name: string;
  email: string | null;
  role: Role;
  kind: "person" | "service";
  active: boolean;
  login: "password" | "oidc" | "none";
  created_at: string;
  created_by: string | null;
  updated_at: string;
  updated_by: string | null;
  deactivated_at: string | null;
  deactivated_by: string | null;
}

export interface NewUser {
  id: string;
  display_name: string;
  email?: string | null;
  role: Role;
  kind: "person" | "service";
  password?: string | null;
}

export interface TokenView {
  id: string;
  user: string;
  name: string;
  role: Role;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  last_used_at: string | null;
}

export interface CreatedToken {
  id: string;
  token: string;
  name: string;
  role: Role;
  user: string;
  expires_at: string | null;
}

export interface NewToken {
  name: string;
  role?: Role | null;
  expires_in_days?: number | null;
  user?: string | null;
}

export type AuditKind = "request" | "decision" | "refusal";
export type AuditOutcome = "ok" | "refused" | "failed";

export interface AuditEntry {
  id: number;
  at: string;
  kind: AuditKind;
  user: string | null;
  role: string | null;
  via: string | null;
  address: string | null;
  method: string | null;
  path: string | null;
  target_type: string | null;
  target_id: string | null;
  status: number | null;
  outcome: AuditOutcome | null;
  action: string | null;
  before: unknown;
  after: unknown;
  comment: string | null;
  producer: string | null;
  request_id: string | null;
}

export interface AuditPage {
  items: AuditEntry[];
  next_before_id: number | null;
}

export interface Thresholds {
  gpu_count: number;
  memory: string;
  updated_by: string | null;
  updated_at: string;
}

export const USERS_KEY = ["admin", "users"] as const;
export const TOKENS_KEY = ["admin", "tokens"] as const;
export const AUDIT_KEY = ["admin", "audit"] as const;
// the thresholds belong to the approval service: its root, so approval events refresh them too
export const THRESHOLDS_KEY = ["approval", "thresholds"] as const;

export const listUsers = (query: Query) => get<Page<UserView>>("/api/users", query);
export const createUser = (user: NewUser) => post<UserView>("/api/users", user);
export const updateUser = (id: string, change: { display_name?: string; email?: string | null }) =>
  patch<UserView>(`/api/users/${encodeURIComponent(id)}`, change);
export const setRole = (id: string, role: Role) => api<UserView>("PUT", `/api/users/${encodeURIComponent(id)}/role`, { role });
export const setActive = (id: string, active: boolean) =>
  post<UserView>(`/api/users/${encodeURIComponent(id)}/${active ? "reactivate" : "deactivate"}`);

export const listTokens = (user: string | null, revoked: boolean) => get<TokenView[]>("/api/tokens", { user, revoked });
export const createToken = (token: NewToken) => post<CreatedToken>("/api/tokens", token);
export const revokeToken = (id: string) => api<TokenView>("DELETE", `/api/tokens/${encodeURIComponent(id)}`);

export const searchAudit = (query: Query) => get<AuditPage>("/api/audit", query);
export const auditCsvUrl = (query: Query) => withQuery("/api/audit.csv", query);

export const getThresholds = () => get<Thresholds>("/api/approval/thresholds");
export const putThresholds = (value: { gpu_count: number; memory: string }) =>
  api<Thresholds>("PUT", "/api/approval/thresholds", value);
