// The shapes the console reads, as the services' schemas.py answer them (only the fields used here).

export type Role = "admin" | "researcher" | "viewer";

export interface Me {
  user: string;
  display_name: string;
  email: string | null;
  role: Role;
  via: string;
  kind: string | null;
}

export interface LoggedIn {
  user: string;
  display_name: string;
  role: Role;
  csrf_token: string;
}

export interface Providers {
  local: boolean;
  oidc: { name: string; login_url: string } | null;
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

/** scheduler schemas.queue_item */
export interface QueueItem {
  position: number;
  workload_id: string;
  job_id: string;
  kind: "workload" | "looptest";
  test_run_id: string | null;
  name: string;
  priority: Priority;
  resources: Record<string, unknown>;
  requester: string;
  submitted_at: string;
  status: string;
  /** services/scheduler/wait.py: why it waits (code, Korean text, figures) and when it may start */
  wait_reason?: import("./runs").WaitReason;
  estimated_start?: string | null;
}

export type Priority = "high" | "normal" | "low";

/** scheduler schemas.job_summary */
export interface JobSummary {
  workload_id: string;
  job_id: string;
  kind: string;
  name: string;
  status: string;
  priority: Priority;
  requester: string;
  submitted_at: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/** wire resources (camelCase, contracts/workload.py) or the trainer's snake_case */
export interface Resources {
  gpuType?: string;
  gpuCount?: number;
  gpu_type?: string;
  gpu_count?: number;
  memory?: string;
  cpu?: number | null;
  maxRuntime?: string;
  max_runtime?: string;
}

export interface TrainingSummary {
  workload_id: string;
  app_id: string;
  spec_version: string;
  name: string;
  requester: string;
  priority: Priority;
  status: string;
  status_label: string;
  submitted_at: string;
  updated_at: string;
  source: string;
  resources: Resources | null;
}

export interface TimelineItem {
  at: string;
  type: string;
  producer: string;
  summary: string;
  details: Record<string, unknown>;
  event_id: string;
}

export interface TrainingDetail extends TrainingSummary {
  is_training_request: boolean;
  training_config: Record<string, unknown>;
  loop_test: LoopTest | null;
  final_metrics: Record<string, unknown>;
  model: { model_id?: string; [key: string]: unknown } | null;
  outcome: string | null;
  timeline: TimelineItem[];
}

export interface LoopTest {
  status: "pending" | "running" | "passed" | "failed";
  episodes: number | null;
  results: LoopTestResults | null;
  executedBy: string | null;
  executedAt: string | null;
}

export interface LoopTestResults {
  convergence?: boolean;
  avgReward?: number | null;
  finalReward?: number | null;
  rewards?: (number | null)[];
  successRate?: string;
  avgDuration?: string | null;
  log?: string;
  reason?: string;
}

export interface ApprovalSummary {
  workload_id: string;
  app_id: string;
  spec_version: string;
  name: string;
  requester: string;
  priority: Priority;
  submitted_at: string;
  status: ApprovalStatus;
  status_label: string;
  needs_approval: boolean;
  auto_approved: boolean;
  reasons: string[];
  loop_test_status: LoopTest["status"] | null;
  test_run_id: string | null;
  decided_by: string | null;
  decided_at: string | null;
  resources: Resources;
  warning: string | null;
}

export type ApprovalStatus = "pending" | "awaiting approval" | "approved" | "rejected" | "cancelled";

export interface ApprovalDetail extends ApprovalSummary {
  comment: string | null;
  approvable: boolean;
  loop_test: LoopTest | null;
  workload: Record<string, unknown>;
}

export interface ModelSummary {
  model_id: string;
  name: string;
  app_id: string;
  app_name: string;
  version: number;
  workload_id: string;
  workload_name: string | null;
  created_at: string;
  stored_at: string | null;
  size_bytes: number;
  file_count: number;
  status: string;
  store_attempts: number;
  store_error: string | null;
}

export interface ModelDetail extends ModelSummary {
  spec_version: string;
  /** the App spec file (BL-04) the model was trained from */
  spec: Record<string, unknown>;
  /** the workload as it ran (requester, resources, …) */
  workload: Record<string, unknown>;
  run_logs: { component: string; task_id: string; component_id: string; url: string | null; download: string | null }[];
  training_config: Record<string, unknown>;
  metrics: Record<string, unknown>;
  files: { path: string; component: string; size_bytes: number; sha256: string; download: string }[];
  aliases: string[];
  download: string;
}

/** one message of GET /api/events */
export interface LiveEvent {
  event_id: string;
  type: string;
  occurred_at: string;
  producer: string;
  correlation_id: string;
  data: Record<string, unknown>;
}
