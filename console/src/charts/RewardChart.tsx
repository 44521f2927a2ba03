// AP-04: the loop test's reward per episode, with its average as a reference line. Loaded only by the
// screens that draw it (React.lazy), so the chart library stays out of the first load.
import ReactEChartsCore from "echarts-for-react/lib/core";
import * as echarts from "echarts/core";
import { LineChart } from "echarts/charts";
import { GridComponent, MarkLineComponent, TooltipComponent } from "echarts/components";
import { SVGRenderer } from "echarts/renderers";

echarts.use([LineChart, GridComponent, TooltipComponent, MarkLineComponent, SVGRenderer]);

export interface RewardChartProps {
  rewards: (number | null)[];
  title: string;
  episodeLabel: string;
  rewardLabel: string;
  average?: number | null;
}

export default function RewardChart({ rewards, title, episodeLabel, rewardLabel, average }: RewardChartProps) {
  const option = {
    animation: false,
    grid: { left: 56, right: 24, top: 24, bottom: 40 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", name: episodeLabel, nameLocation: "middle", nameGap: 26, data: rewards.map((_, i) => i + 1) },
    yAxis: { type: "value", name: rewardLabel, scale: true },
    series: [
      {
        type: "line",
        name: rewardLabel,
        data: rewards,
        connectNulls: false,
        showSymbol: rewards.length <= 50,
        markLine: average != null ? { symbol: "none", data: [{ yAxis: average }] } : undefined,
      },
    ],
  };
  return (
    <figure className="chart" data-testid="reward-chart" data-points={rewards.length}>
      <ReactEChartsCore echarts={echarts} option={option} style={{ height: 280, width: "100%" }} opts={{ renderer: "svg" }} />
      <figcaption>{title}</figcaption>
      {/* the same figures as text for screen readers and keyboard users */}
      <details>
        <summary>{rewardLabel}</summary>
        <ol>
          {rewards.map((reward, i) => (
            <li key={i}>{episodeLabel} {i + 1}: {reward ?? "—"}</li>
          ))}
        </ol>
      </details>
    </figure>
  );
}
