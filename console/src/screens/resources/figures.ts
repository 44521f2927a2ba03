// The seed's §7.2 table from GET /api/scheduler/resources: one row per GPU type (and their sum when there
// are several), memory and CPU, each with total / requested / actually used / idle and their share of
// the total. Pure, so the arithmetic is tested apart from the screen.
import type { ClusterResources, Measure, Section } from "../../api/resources";

export interface Cell {
  value: number;
  text: string;
  /** share of the row's total, 0–100 with one decimal; null when the total is 0 */
  percent: number | null;
}

export interface UsageRow {
  key: string;
  kind: "gpu" | "gpuTotal" | "memory" | "cpu";
  gpuType?: string;
  total: string;
  requested: Cell;
  /** null: the runner does not measure this resource (never shown as a copy of the allocation) */
  used: Cell | null;
  idle: Cell;
}

export function percent(part: number, total: number): number | null {
  if (!(total > 0)) return null;
  return Math.round((part / total) * 1000) / 10;
}

/** a count as people write it: whole numbers plain, fractions (CPU cores) to at most two decimals */
export function count(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(2)));
}

const GB = 1_000_000_000; // the platform's memory unit is decimal (contracts/resources.py format_memory)

export function gigabytes(bytes: number): string {
  const value = bytes / GB;
  return `${value >= 100 || Number.isInteger(value) ? Math.round(value) : Number(value.toFixed(1))}GB`;
}

function cell(value: number, total: number, format: (n: number) => string): Cell {
  return { value, text: format(value), percent: percent(value, total) };
}

/** idle is what no one requested: total − requested, never below 0 (a node going Down can leave more
 *  allocated than its shrunken total for a moment) */
export function idleOf(total: number, requested: number): number {
  return Math.max(0, total - requested);
}

function row(key: string, kind: UsageRow["kind"], section: Section, measured: boolean, format: (n: number) => string,
             gpuType?: string): UsageRow {
  const { total, allocated, used } = section;
  return {
    key,
    kind,
    gpuType,
    total: format(total),
    requested: cell(allocated, total, format),
    used: measured && used !== null ? cell(used, total, format) : null,
    idle: cell(idleOf(total, allocated), total, format),
  };
}

export function usageRows(resources: ClusterResources): UsageRow[] {
  const measures = new Set<Measure>(resources.measured);
  const rows = resources.gpus.map((g) => row(`gpu:${g.gpu_type}`, "gpu", g, measures.has("gpu"), count, g.gpu_type));
  if (resources.gpus.length > 1) rows.push(row("gpu", "gpuTotal", resources.gpu, measures.has("gpu"), count));
  const m = resources.memory;
  rows.push(row("memory", "memory", { total: m.total_bytes, allocated: m.allocated_bytes, used: m.used_bytes, idle: m.idle_bytes },
                measures.has("memory"), gigabytes));
  rows.push(row("cpu", "cpu", resources.cpu, measures.has("cpu"), count));
  return rows;
}
