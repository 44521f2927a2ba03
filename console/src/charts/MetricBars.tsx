// MD-06: the compared models' summary metrics as grouped bars, one group per metric. Loaded only by the
// compare screen (React.lazy), so the chart library stays out of the first load.
import ReactEChartsCore from "echarts-for-react/lib/core";
import * as echarts from "echarts/core";
import { BarChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { SVGRenderer } from "echarts/renderers";

echarts.use([BarChart, GridComponent, TooltipComponent, LegendComponent, SVGRenderer]);

export interface MetricBarsProps {
  metrics: Record<string, Record<string, number | null>>;
  series: { id: string; label: string }[];
  title: string;
}

export default function MetricBars({ metrics, series, title }: MetricBarsProps) {
  const names = Object.keys(metrics);
  const option = {
    animation: false,
    grid: { left: 56, right: 24, top: 40, bottom: 40 },
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    xAxis: { type: "category", data: names },
    yAxis: { type: "value", scale: true },
    series: series.map((s) => ({ type: "bar", name: s.label, data: names.map((n) => metrics[n][s.id] ?? null) })),
  };
  return (
    <figure className="chart" data-testid="metric-bars" data-series={series.length}>
      <ReactEChartsCore echarts={echarts} option={option} style={{ height: 300, width: "100%" }} opts={{ renderer: "svg" }} />
      <figcaption>{title}</figcaption>
    </figure>
  );
}
