// The runs screens' API: a workload's runs as the scheduler answers them (services/scheduler/schemas.py
// job_detail / run_view), its spec's DAG from the trainer, and the log streams (scheduler live, models after).
import { ApiError, get, messageOf } from "./client";

export type RunStatus = "pending" | "starting" | "running" | "succeeded" | "failed" | "stopped" | "skipped";

export interface Allocation {
  node: string;
  gpu_type: string | null;
  gpu_count: number;
  gpu_indices: number[];
  memory: string;
  cpu: number;
}

/** scheduler schemas.run_view: one component's run */
export interface ComponentRun {
  task_id: string;
  component_id: string;
  name: string;
  round: number;
  status: RunStatus;
  attempt: number;
  rerun_reason: string | null;
  allocation: Allocation | null;
  started_at: string | null;
  finished_at: string | null;
  duration_s: number | null;
  exit_code: number | null;
  reason: string | null;
  log: string | null;
}

/** scheduler schemas.job_detail (+ loop_tests) */
export interface WorkloadRuns {
  workload_id: string;
  name?: string;
  status: string | null;
  priority?: string;
  requester?: string;
  submitted_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  deadline?: string | null;
  max_runtime_s?: number;
  position?: number | null;
  failure?: { stage: string; reason: string; component_id: string | null } | null;
  components: ComponentRun[];
}

/** the App spec's Tasks as contracts/spec.py writes them (only what the DAG needs) */
export interface SpecTask {
  task_id: string;
  name: string;
  components: { component_id: string; name: string; resources?: { gpu_type?: string; gpu_count?: number; memory?: string } }[];
  workflow: { from: string; to: string }[];
}

/** services/scheduler/wait.py WaitReason.to_dict() */
export interface WaitReason {
  code: "starting" | "behind" | "gpus" | "memory" | "cpu" | "unschedulable" | "nodes_unavailable" | string;
  text: string;
  gpu_type?: string;
  gpu_count?: number;
  gpus_free?: number;
  memory_bytes?: number;
  memory_free_bytes?: number;
  cpu?: number;
  cpu_free?: number;
  ahead?: number;
  nodes?: string[];
}

export const runKeys = {
  workload: (id: string) => ["scheduler", "workload", id] as const,
  spec: (id: string) => ["trainer", "training-request", id] as const,
};

export const LIVE: ReadonlySet<RunStatus> = new Set(["starting", "running"]);

export function fetchWorkloadRuns(id: string): Promise<WorkloadRuns> {
  return get<WorkloadRuns>(`/api/scheduler/workloads/${encodeURIComponent(id)}`);
}

/** Where a component's log is read: the scheduler while it runs (follow streams until it ends), the model's
 * copy once a model keeps it (the models service holds per-component logs), else the scheduler's stored copy. */
export function logUrl(workloadId: string, run: ComponentRun, follow: boolean, modelLog?: string | null): string {
  if (modelLog && !LIVE.has(run.status)) return `/api/models${modelLog}`;
  const params = new URLSearchParams({ component: run.component_id, task: run.task_id });
  if (follow) params.set("follow", "true");
  return `/api/scheduler/workloads/${encodeURIComponent(workloadId)}/logs?${params}`;
}

/** Read a text stream chunk by chunk (the gateway proxies the scheduler's streaming answer as it comes). */
export async function readLog(url: string, onText: (text: string) => void, signal: AbortSignal): Promise<void> {
  const response = await fetch(url, { credentials: "same-origin", signal, headers: { Accept: "text/plain" } });
  if (!response.ok) {
    const type = response.headers.get("content-type") ?? "";
    const body: unknown = type.includes("json") ? await response.json().catch(() => null) : await response.text();
    throw new ApiError(response.status, messageOf(response.status, body), body);
  }
  if (!response.body) {
    onText(await response.text());
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onText(decoder.decode(value, { stream: true }));
  }
  const rest = decoder.decode();
  if (rest) onText(rest);
}
