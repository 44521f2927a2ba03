// TR-08: the compare answer shaped for the screen: which trainings, their reward curves to overlay, the
// final metrics side by side (one row per metric, one column per training) and one metric as bars.
import type { Compared, Comparison } from "../../api/training";

export const MAX_COMPARED = 10; // the trainer's compare takes 2…10 ids

/** "a,b,,a" → ["a", "b"]: the ids in their order, once each, at most MAX_COMPARED */
export function parseIds(param: string | null): string[] {
  const ids = (param ?? "").split(",").map((id) => id.trim()).filter(Boolean);
  return [...new Set(ids)].slice(0, MAX_COMPARED);
}

export function labelOf(request: Compared): string {
  return request.name ? `${request.name} (${request.workload_id})` : request.workload_id;
}

export interface CurveSeries {
  name: string;
  workloadId: string;
  points: [number, number][];
  total: number;
}

/** one line per training that has a reward curve, as (episode, reward) pairs */
export function curveSeries(comparison: Comparison): CurveSeries[] {
  return comparison.requests
    .filter((r) => r.reward_curve && r.reward_curve.rewards.length > 0)
    .map((r) => ({
      name: labelOf(r),
      workloadId: r.workload_id,
      points: r.reward_curve!.episodes.map((episode, i) => [episode, r.reward_curve!.rewards[i]] as [number, number]),
      total: r.reward_curve!.total,
    }));
}

export interface MetricRow {
  metric: string;
  values: (number | null)[]; // in the order of comparison.requests
  spread: number | null; // max - min of the values present: how far apart the trainings are
}

export function metricRows(comparison: Comparison): MetricRow[] {
  return Object.keys(comparison.metrics)
    .sort()
    .map((metric) => {
      const values = comparison.requests.map((r) => {
        const value = comparison.metrics[metric][r.workload_id];
        return typeof value === "number" ? value : null;
      });
      const present = values.filter((v): v is number => v !== null);
      return { metric, values, spread: present.length > 1 ? Math.max(...present) - Math.min(...present) : null };
    });
}

/** the metric charted first: a reward one every training has, else any every training has, else the first */
export function defaultMetric(rows: MetricRow[]): string {
  const everywhere = rows.filter((row) => row.values.every((v) => v !== null));
  const pool = everywhere.length ? everywhere : rows;
  return (pool.find((row) => /final_reward/.test(row.metric)) ?? pool.find((row) => /reward/.test(row.metric)) ?? pool[0])?.metric ?? "";
}

export interface Bars {
  labels: string[];
  values: (number | null)[];
}

export function barsOf(comparison: Comparison, rows: MetricRow[], metric: string): Bars {
  const row = rows.find((r) => r.metric === metric);
  return { labels: comparison.requests.map(labelOf), values: row ? row.values : comparison.requests.map(() => null) };
}

/** a metric value as the table shows it: integers whole, others to 4 significant digits */
export function formatMetric(value: number | null): string {
  if (value === null) return "—";
  if (Number.isInteger(value)) return String(value);
  return Number(value.toPrecision(4)).toString();
}

/** the training configs' fields that differ between the trainings (what the comparison is about) */
export function differingConfig(requests: Compared[]): string[] {
  const keys = new Set(requests.flatMap((r) => Object.keys(r.training_config ?? {})));
  return [...keys].sort().filter((key) => new Set(requests.map((r) => JSON.stringify(r.training_config?.[key] ?? null))).size > 1);
}

/** the history's "compare selected" button: 2…10 trainings (the trainer's compare refuses others) */
export function compareVerdict(ids: string[]): { reason: string } | null {
  if (ids.length < 2) return { reason: "compare.needTwo" };
  if (ids.length > MAX_COMPARED) return { reason: "compare.tooMany" };
  return null;
}
