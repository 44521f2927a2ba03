// The scheduler's resource views (RS-01…RS-06) as services/scheduler/schemas.py and history.py answer them.
// Every key starts with "scheduler": the workload events (started, completed, failed, cancelled) refresh them.
import { get, patch } from "./client";
import type { JobSummary } from "./types";

/** total / allocated (the seed's "requested") / used (measured; null when the runner cannot) / idle */
export interface Section {
  total: number;
  allocated: number;
  used: number | null;
  idle: number;
}

export interface MemorySection {
  total_bytes: number;
  allocated_bytes: number;
  used_bytes: number | null;
  idle_bytes: number;
  total: string;
  allocated: string;
  used: string | null;
  idle: string;
}

export interface GpuTypeSection extends Section {
  gpu_type: string;
  schedulable_idle: number;
}

export type Measure = "memory" | "cpu" | "gpu";

export interface ClusterResources {
  gpu: Section;
  gpus: GpuTypeSection[];
  memory: MemorySection;
  cpu: Section;
  measured: Measure[];
}

export type NodeStatus = "Active" | "Drain" | "Down";

export interface NodeView {
  name: string;
  status: NodeStatus;
  observed_status: NodeStatus;
  override: NodeStatus | null;
  gpus: Record<string, Section & { memory_per_gpu_bytes: number; memory_per_gpu: string }>;
  memory: MemorySection;
  cpu: Section;
  allocations: number;
}

export interface WorkloadUsage extends JobSummary {
  allocated: { gpus: number; memory_bytes: number; cpu: number };
  used: { memory_bytes: number | null; cpu_cores: number | null; gpus: number | null; gpu_memory_bytes: number | null };
  components: { name: string; allocation: { node: string; gpu_type: string; gpu_count: number } | null }[];
}

export interface Series {
  total: (number | null)[];
  allocated: (number | null)[];
  used: (number | null)[];
}

export interface UsageHistory {
  from: string;
  to: string;
  step_s: number;
  sample_s: number;
  retention_days: number;
  times: string[];
  gpus: (Series & { gpu_type: string })[];
  memory: { total_bytes: (number | null)[]; allocated_bytes: (number | null)[]; used_bytes: (number | null)[] };
  cpu: Series;
  measured: Measure[];
}

export const RESOURCES_KEY = ["scheduler", "resources"] as const;
export const NODES_KEY = ["scheduler", "nodes"] as const;
export const WORKLOAD_USAGE_KEY = ["scheduler", "resources", "workloads"] as const;
export const historyKey = (hours: number) => ["scheduler", "resources", "history", hours] as const;

export const getResources = () => get<ClusterResources>("/api/scheduler/resources");
export const getNodes = () => get<{ items: NodeView[]; count: number }>("/api/scheduler/nodes");
export const getWorkloadUsage = () =>
  get<{ items: WorkloadUsage[]; count: number; measured: Measure[] }>("/api/scheduler/resources/workloads");
export const getHistory = (hours: number, now: Date = new Date()) =>
  get<UsageHistory>("/api/scheduler/resources/history", { from: new Date(now.getTime() - hours * 3600_000).toISOString() });
export const setNodeStatus = (name: string, status: NodeStatus) =>
  patch<NodeView>(`/api/scheduler/nodes/${encodeURIComponent(name)}`, { status });
