// The trainer's submit and compare API (services/trainer/api.py, behind the gateway at /api/trainer).
import { get, post } from "./client";
import type { Page, Priority, Resources } from "./types";

/** schemas.AppView: a ready App (TR-01) */
export interface ReadyApp {
  app_id: string;
  name: string;
  version: string;
  status: string;
  task_count: number;
  component_count: number;
  largest: ({ component_id: string; name: string } & ResourceRequest) | null;
  version_count: number;
  versions: string[] | null;
}

export interface ResourceRequest {
  gpu_type: string;
  gpu_count: number;
  memory: string;
  cpu?: number | null;
  max_runtime?: string;
}

/** schemas.ResourceDefaults (TR-02, TR-03): the largest component's resources and the App's training config */
export interface ResourceDefaults extends ResourceRequest {
  app_id: string;
  spec_version: string;
  max_runtime: string;
  source_component: { component_id: string; name: string };
  training_config: TrainingConfig;
}

export interface TrainingConfig {
  episodes?: number;
  learning_rate?: number;
  batch_size?: number;
  gamma?: number;
  max_steps_per_episode?: number;
  env_config?: Record<string, unknown>;
  reward_params?: Record<string, unknown>;
  simulation_seed?: number;
}

/** schemas.SubmitTraining */
export interface SubmitTraining {
  app_id: string;
  spec_version?: string;
  name?: string;
  resources?: ResourceRequest;
  training_config: TrainingConfig;
  env_vars?: Record<string, string>;
  priority: Priority;
}

export interface Submitted {
  workload_id: string;
  status: string;
  submitted_at: string;
}

export interface RewardCurve {
  component: string;
  episodes: number[];
  rewards: number[];
  total: number;
}

/** one request of schemas.Comparison (TR-08) */
export interface Compared {
  workload_id: string;
  app_id: string;
  spec_version: string;
  name?: string;
  status: string;
  status_label?: string;
  training_config: Record<string, unknown>;
  resources: Resources | null;
  final_metrics: Record<string, number>;
  reward_curve?: RewardCurve | null;
}

export interface Comparison {
  requests: Compared[];
  metrics: Record<string, Record<string, number>>;
}

const BASE = "/api/trainer";

export const trainer = {
  apps: (q?: string) => get<Page<ReadyApp>>(`${BASE}/apps`, { q, page_size: 100 }),
  app: (id: string) => get<ReadyApp>(`${BASE}/apps/${encodeURIComponent(id)}`),
  defaults: (id: string, version?: string) =>
    get<ResourceDefaults>(`${BASE}/apps/${encodeURIComponent(id)}/resource-defaults`, { version }),
  submit: (body: SubmitTraining) => post<Submitted>(`${BASE}/training-requests`, body),
  compare: (ids: string[]) => get<Comparison>(`${BASE}/training-requests/compare`, { ids: ids.join(",") }),
};

/** react-query keys: under "trainer", so every saga event refreshes them (live/invalidation.ts) */
export const trainingKeys = {
  apps: (q: string) => ["trainer", "apps", q] as const,
  app: (id: string) => ["trainer", "app", id] as const,
  defaults: (id: string, version: string) => ["trainer", "resource-defaults", id, version] as const,
  compare: (ids: string[]) => ["trainer", "compare", ids] as const,
};
