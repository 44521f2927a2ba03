import { expect, it } from "vitest";
import type { UsageHistory } from "../../api/resources";
import { sampled, trendLines } from "./trend";

const t = (key: string, values?: Record<string, string>) => `${key}(${values?.name ?? ""})`;
const history: UsageHistory = {
  from: "2026-12-07T10:00:00Z", to: "2026-12-07T10:03:00Z", step_s: 60, sample_s: 30, retention_days: 14,
  times: ["2026-12-07T10:00:00Z", "2026-12-07T10:01:00Z", "2026-12-07T10:02:00Z"],
  gpus: [{ gpu_type: "A100", total: [16, null, 16], allocated: [4, null, 8], used: [null, null, null] }],
  memory: { total_bytes: [2048e9, null, 2048e9], allocated_bytes: [128e9, null, 256e9], used_bytes: [64e9, null, 100e9] },
  cpu: { total: [256, null, 256], allocated: [8, null, 16], used: [2, null, 3] },
  measured: ["memory", "cpu"],
};

it("draws requested and total per GPU type, and a used line only for what the runner measures", () => {
  const gpu = trendLines(history, "gpu", t);
  expect(gpu.map((l) => l.name)).toEqual(["cluster.seriesRequested(A100)", "cluster.seriesTotal(A100)"]);
  expect(gpu[0].values).toEqual([4, null, 8]);
  expect(gpu[1].dashed).toBe(true);
  const memory = trendLines(history, "memory", t);
  expect(memory.map((l) => l.values)).toEqual([[128, null, 256], [64, null, 100], [2048, null, 2048]]); // in GB
  expect(trendLines(history, "cpu", t)[1].values).toEqual([2, null, 3]);
});

it("knows a window without any sample", () => {
  expect(sampled(history)).toBe(true);
  const none = { ...history, gpus: [], cpu: { total: [null, null], allocated: [null, null], used: [null, null] } };
  expect(sampled(none)).toBe(false);
});
