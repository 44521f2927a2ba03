import { describe, expect, it } from "vitest";
import type { ClusterResources } from "../../api/resources";
import { count, gigabytes, idleOf, percent, usageRows } from "./figures";

// seed 001 §7.2's cluster: 16 A100, 8 V100, 2,048 GB, 256 cores
const cluster: ClusterResources = {
  gpu: { total: 24, allocated: 14, used: 11, idle: 10 },
  gpus: [
    { gpu_type: "A100", total: 16, allocated: 12, used: 10, idle: 4, schedulable_idle: 4 },
    { gpu_type: "V100", total: 8, allocated: 2, used: 1, idle: 6, schedulable_idle: 6 },
  ],
  memory: {
    total_bytes: 2048e9, allocated_bytes: 1536e9, used_bytes: 1200e9, idle_bytes: 512e9,
    total: "2048GB", allocated: "1536GB", used: "1200GB", idle: "512GB",
  },
  cpu: { total: 256, allocated: 96, used: 70.5, idle: 160 },
  measured: ["memory", "cpu", "gpu"],
};

describe("the §7.2 table", () => {
  it("gives each GPU type, their sum, memory and CPU a row with total / requested / used / idle and shares", () => {
    const rows = usageRows(cluster);
    expect(rows.map((r) => r.key)).toEqual(["gpu:A100", "gpu:V100", "gpu", "memory", "cpu"]);
    const [a100, , sum, memory, cpu] = rows;
    expect(a100.total).toBe("16");
    expect(a100.requested).toEqual({ value: 12, text: "12", percent: 75 });
    expect(a100.used).toEqual({ value: 10, text: "10", percent: 62.5 });
    expect(a100.idle).toEqual({ value: 4, text: "4", percent: 25 });
    expect(sum.requested.percent).toBe(58.3); // 14 / 24
    expect(memory.total).toBe("2048GB");
    expect(memory.requested).toMatchObject({ text: "1536GB", percent: 75 });
    expect(memory.used).toMatchObject({ text: "1200GB", percent: 58.6 });
    expect(memory.idle).toMatchObject({ text: "512GB", percent: 25 });
    expect(cpu.used).toMatchObject({ text: "70.5", percent: 27.5 });
    expect(cpu.idle).toMatchObject({ value: 160, percent: 62.5 });
  });

  it("requested and idle always add up to the total", () => {
    for (const row of usageRows(cluster)) {
      expect((row.requested.percent ?? 0) + (row.idle.percent ?? 0)).toBeCloseTo(100, 0);
    }
  });

  it("shows no use where the runner does not measure it, never the allocation in its place", () => {
    const rows = usageRows({ ...cluster, measured: ["memory", "cpu"] });
    expect(rows.filter((r) => r.kind === "gpu" || r.kind === "gpuTotal").map((r) => r.used)).toEqual([null, null, null]);
    expect(rows.find((r) => r.kind === "memory")?.used).not.toBeNull();
    const unsampled = usageRows({ ...cluster, gpus: [{ ...cluster.gpus[0], used: null }] });
    expect(unsampled[0].used).toBeNull(); // measured, but a run holding GPUs has no figure yet
  });

  it("leaves out the sum row with a single GPU type", () => {
    expect(usageRows({ ...cluster, gpus: [cluster.gpus[0]] }).map((r) => r.key)).toEqual(["gpu:A100", "memory", "cpu"]);
  });

  it("idle never goes below zero and a share of nothing is no share", () => {
    expect(idleOf(8, 10)).toBe(0); // a node went Down under running work: more allocated than the total
    expect(idleOf(8, 3)).toBe(5);
    expect(percent(3, 0)).toBeNull();
    expect(percent(1, 3)).toBe(33.3);
    expect(percent(2, 3)).toBe(66.7);
    const empty = usageRows({ ...cluster, gpus: [], cpu: { total: 0, allocated: 0, used: 0, idle: 0 } });
    expect(empty.find((r) => r.kind === "cpu")?.idle).toEqual({ value: 0, text: "0", percent: null });
  });

  it("writes counts and memory as people read them", () => {
    expect(count(8)).toBe("8");
    expect(count(1.5)).toBe("1.5");
    expect(count(0.3333)).toBe("0.33");
    expect(gigabytes(2048e9)).toBe("2048GB");
    expect(gigabytes(1.25e9)).toBe("1.3GB");
    expect(gigabytes(0)).toBe("0GB");
  });
});
