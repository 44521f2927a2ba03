// RS-06: the lines the usage chart draws for one kind of resource, from GET /api/scheduler/resources/history.
// Pure: which series exist (a used line only where the runner measures it) and in what unit.
import type { UsageHistory } from "../../api/resources";
import type { UsageLine } from "../../charts/UsageChart";

export type TrendKind = "gpu" | "memory" | "cpu";
export const RANGES = [1, 6, 24, 168] as const;
export type RangeHours = (typeof RANGES)[number];

type Label = (key: string, values?: Record<string, string>) => string;

const toGb = (values: (number | null)[]) => values.map((v) => (v === null ? null : Math.round(v / 1e8) / 10));

export function trendLines(history: UsageHistory, kind: TrendKind, t: Label): UsageLine[] {
  const measured = new Set(history.measured);
  const lines = (name: string, series: { total: (number | null)[]; allocated: (number | null)[]; used: (number | null)[] }) => [
    { name: t("cluster.seriesRequested", { name }), values: series.allocated },
    ...(measured.has(kind) ? [{ name: t("cluster.seriesUsed", { name }), values: series.used }] : []),
    { name: t("cluster.seriesTotal", { name }), values: series.total, dashed: true },
  ];
  if (kind === "gpu") return history.gpus.flatMap((g) => lines(g.gpu_type, g));
  if (kind === "memory") {
    const m = history.memory;
    return lines(t("cluster.memory"), { total: toGb(m.total_bytes), allocated: toGb(m.allocated_bytes), used: toGb(m.used_bytes) });
  }
  return lines("CPU", history.cpu);
}

/** has any bucket of the window a sample at all? */
export function sampled(history: UsageHistory): boolean {
  return [history.cpu.total, ...history.gpus.map((g) => g.total)].some((values) => values.some((v) => v !== null));
}
