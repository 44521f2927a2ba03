import type { Comparison } from "../../api/training";
import { barsOf, compareVerdict, curveSeries, defaultMetric, differingConfig, formatMetric, labelOf, metricRows, parseIds } from "./compareData";

const comparison: Comparison = {
  requests: [
    {
      workload_id: "WL-A", app_id: "APP-1", spec_version: "1.0.0", name: "run A", status: "model stored",
      training_config: { episodes: 3, learningRate: 0.001, envConfig: { seed: 1 } }, resources: null,
      final_metrics: { "rl-agent.final_reward": 92.1, "data-loader.rows": 10 },
      reward_curve: { component: "rl-agent", episodes: [1, 2, 3], rewards: [1, 5, 9], total: 3 },
    },
    {
      workload_id: "WL-B", app_id: "APP-1", spec_version: "1.0.0", name: "", status: "running",
      training_config: { episodes: 3, learningRate: 0.01, envConfig: { seed: 1 } }, resources: null,
      final_metrics: { "data-loader.rows": 12 }, reward_curve: null,
    },
  ],
  metrics: { "rl-agent.final_reward": { "WL-A": 92.1 }, "data-loader.rows": { "WL-A": 10, "WL-B": 12 } },
};

test("ids from the query: in order, once each, at most ten", () => {
  expect(parseIds(" WL-A,WL-B,,WL-A ")).toEqual(["WL-A", "WL-B"]);
  expect(parseIds(null)).toEqual([]);
  expect(parseIds(Array.from({ length: 12 }, (_, i) => `W${i}`).join(","))).toHaveLength(10);
});

test("only trainings with a reward curve become lines, as (episode, reward) pairs", () => {
  expect(curveSeries(comparison)).toEqual([{ name: "run A (WL-A)", workloadId: "WL-A", points: [[1, 1], [2, 5], [3, 9]], total: 3 }]);
  expect(labelOf(comparison.requests[1])).toBe("WL-B");
});

test("the metrics table: a row per metric in name order, a column per training, a gap where one has none", () => {
  const rows = metricRows(comparison);
  expect(rows).toEqual([
    { metric: "data-loader.rows", values: [10, 12], spread: 2 },
    { metric: "rl-agent.final_reward", values: [92.1, null], spread: null },
  ]);
  // a reward metric is charted first only when every training has it
  expect(defaultMetric(rows)).toBe("data-loader.rows");
  expect(defaultMetric([{ metric: "x", values: [1], spread: null }, { metric: "a.final_reward", values: [2], spread: null }])).toBe("a.final_reward");
  expect(defaultMetric([])).toBe("");
  expect(barsOf(comparison, rows, "rl-agent.final_reward")).toEqual({ labels: ["run A (WL-A)", "WL-B"], values: [92.1, null] });
});

test("only the settings that differ are listed; figures are shown briefly", () => {
  expect(differingConfig(comparison.requests)).toEqual(["learningRate"]);
  expect([formatMetric(null), formatMetric(10000), formatMetric(0.123456), formatMetric(-151.5061)]).toEqual(["—", "10000", "0.1235", "-151.5"]);
});

test("the history's compare button needs two to ten trainings", () => {
  expect(compareVerdict(["a"])).toEqual({ reason: "compare.needTwo" });
  expect(compareVerdict(["a", "b"])).toBeNull();
  expect(compareVerdict(Array.from({ length: 11 }, (_, i) => `${i}`))).toEqual({ reason: "compare.tooMany" });
});
