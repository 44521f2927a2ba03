// TR-08: one final metric across several trainings, one bar each. Lazily loaded with the compare screen.
import ReactEChartsCore from "echarts-for-react/lib/core";
import * as echarts from "echarts/core";
import { BarChart } from "echarts/charts";
import { GridComponent, TooltipComponent } from "echarts/components";
import { SVGRenderer } from "echarts/renderers";

echarts.use([BarChart, GridComponent, TooltipComponent, SVGRenderer]);

export interface MetricBarChartProps {
  labels: string[];
  values: (number | null)[];
  title: string;
  metric: string;
}

const short = ({ value }: { value: unknown }) =>
  typeof value === "number" ? (Number.isInteger(value) ? String(value) : Number(value.toPrecision(4)).toString()) : "";

export default function MetricBarChart({ labels, values, title, metric }: MetricBarChartProps) {
  const option = {
    animation: false,
    grid: { left: 64, right: 24, top: 24, bottom: 72 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: labels, axisLabel: { interval: 0, width: 140, overflow: "truncate" } },
    yAxis: { type: "value", name: metric }, // from zero: bar lengths compare honestly
    series: [{ type: "bar", name: metric, data: values, barMaxWidth: 48, label: { show: true, position: "top", formatter: short } }],
  };
  return (
    <figure className="chart" data-testid="metric-bar-chart" data-metric={metric}>
      <ReactEChartsCore echarts={echarts} option={option} style={{ height: 300, width: "100%" }} opts={{ renderer: "svg" }} />
      <figcaption>{title}</figcaption>
    </figure>
  );
}
