// The models service's shapes the model screens read (services/models/schemas.py), and its calls.
import { get, post, api } from "./client";
import type { ModelSummary } from "./types";

export interface RunLog {
  component: string;
  task_id: string;
  component_id: string;
  url: string | null;
  download: string | null;
}

export interface AliasMoveRecord {
  action: "move" | "rollback";
  from_model_id: string | null;
  to_model_id: string;
  gate: { metric: string; min?: number | null; max?: number | null } | null;
  gate_observed: number | null;
  undone: boolean;
  moved_by: string;
  moved_at: string;
}

export interface AliasView {
  alias: string;
  model_id: string;
  version: number;
  name: string;
  moved_at: string;
  moved_by: string;
  history: AliasMoveRecord[];
}

export interface AppAliases {
  app_id: string;
  aliases: AliasView[];
}

export interface AppVersions {
  app_id: string;
  versions: ModelSummary[];
}

export interface Comparison {
  models: ModelSummary[];
  metrics: Record<string, Record<string, number | null>>;
}

export interface Gate {
  metric: string;
  min?: number;
  max?: number;
}

export interface AliasMoved {
  app_id: string;
  alias: string;
  model_id: string;
  version: number;
  previous_model_id: string | null;
  changed: boolean;
  action: "move" | "rollback";
  moved_by: string;
  gate_observed: number | null;
}

// the query keys start with "models": a model.* event refreshes them all (src/live/invalidation.ts)
export const modelKeys = {
  versions: (appId: string) => ["models", "versions", appId] as const,
  aliases: (appId: string) => ["models", "aliases", appId] as const,
  compare: (ids: string[]) => ["models", "compare", ids] as const,
};

const app = (appId: string) => `/api/models/apps/${encodeURIComponent(appId)}`;

export const fetchVersions = (appId: string) => get<AppVersions>(`${app(appId)}/models`);
export const fetchAliases = (appId: string) => get<AppAliases>(`${app(appId)}/aliases`);
export const fetchComparison = (ids: string[]) => get<Comparison>("/api/models/models/compare", { ids: ids.join(",") });

/** MD-05: point `alias` at a model; `expected` makes it a compare-and-set against what the screen showed */
export function moveAlias(appId: string, alias: string, modelId: string, expected: string | null, gate?: Gate) {
  return api<AliasMoved>("PUT", `${app(appId)}/aliases/${encodeURIComponent(alias)}`, {
    model_id: modelId,
    ...(expected ? { expected_model_id: expected } : {}),
    ...(gate ? { gate } : {}),
  });
}

export const rollBackAlias = (appId: string, alias: string) =>
  post<AliasMoved>(`${app(appId)}/aliases/${encodeURIComponent(alias)}/rollback`);
