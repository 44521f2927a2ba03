// BL-06: whether a component's resources reach the approval threshold (docs/spec.md §5.1: ANY single
// component with GPU >= 4 or memory >= 128GB needs an admin), computed as the form changes, with the
// same units as contracts/resources.py parse_memory.
import type { ComponentResources, Thresholds } from "../../api/builder";

const UNITS: Record<string, number> = {
  B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12,
  KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
  KI: 2 ** 10, MI: 2 ** 20, GI: 2 ** 30, TI: 2 ** 40,
};
const MEMORY = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/;

/** bytes of "64GB" (a bare number counts as GB), or null when it is not a memory value */
export function parseMemory(text: string): number | null {
  const match = MEMORY.exec(text ?? "");
  if (!match) return null;
  const factor = UNITS[(match[2] || "GB").toUpperCase()];
  return factor === undefined ? null : Math.floor(Number(match[1]) * factor);
}

export type ThresholdReason =
  | { kind: "gpu"; count: number; limit: number }
  | { kind: "memory"; memory: string; limit: string };

/** what about these resources reaches the threshold; empty when nothing does (or the threshold is unknown) */
export function thresholdReasons(resources: Partial<ComponentResources>, thresholds: Thresholds | undefined): ThresholdReason[] {
  if (!thresholds) return [];
  const reasons: ThresholdReason[] = [];
  const count = Number(resources.gpu_count ?? 0);
  if (Number.isFinite(count) && count >= thresholds.gpu_count) {
    reasons.push({ kind: "gpu", count, limit: thresholds.gpu_count });
  }
  const memory = parseMemory(resources.memory ?? "");
  const limit = parseMemory(thresholds.memory);
  if (memory !== null && limit !== null && memory >= limit) {
    reasons.push({ kind: "memory", memory: resources.memory ?? "", limit: thresholds.memory });
  }
  return reasons;
}
