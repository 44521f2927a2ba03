// TR-08: several trainings' reward per episode overlaid, one line each. Lazily loaded (React.lazy) like
// RewardChart, so the chart library stays out of the first load.
import ReactEChartsCore from "echarts-for-react/lib/core";
import * as echarts from "echarts/core";
import { LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { SVGRenderer } from "echarts/renderers";

echarts.use([LineChart, GridComponent, TooltipComponent, LegendComponent, SVGRenderer]);

export interface RewardCurvesChartProps {
  series: { name: string; points: [number, number][] }[];
  title: string;
  episodeLabel: string;
  rewardLabel: string;
}

export default function RewardCurvesChart({ series, title, episodeLabel, rewardLabel }: RewardCurvesChartProps) {
  const option = {
    animation: false,
    grid: { left: 56, right: 24, top: 48, bottom: 40 },
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", top: 0 },
    xAxis: { type: "value", name: episodeLabel, nameLocation: "middle", nameGap: 26, min: 1 },
    yAxis: { type: "value", name: rewardLabel, scale: true },
    series: series.map((s) => ({ type: "line", name: s.name, data: s.points, showSymbol: s.points.length <= 50 })),
  };
  return (
    <figure className="chart" data-testid="reward-curves-chart" data-series={series.length}>
      <ReactEChartsCore echarts={echarts} option={option} style={{ height: 320, width: "100%" }} opts={{ renderer: "svg" }} />
      <figcaption>{title}</figcaption>
    </figure>
  );
}
