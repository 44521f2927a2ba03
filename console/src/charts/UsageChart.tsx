// RS-06: resource usage over time, one line per series (e.g. A100 requested, A100 used, A100 total dashed).
// Loaded only by the resources screen (React.lazy), so the chart library stays out of the first load.
import ReactEChartsCore from "echarts-for-react/lib/core";
import * as echarts from "echarts/core";
import { LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { SVGRenderer } from "echarts/renderers";

echarts.use([LineChart, GridComponent, TooltipComponent, LegendComponent, SVGRenderer]);

export interface UsageLine {
  name: string;
  values: (number | null)[];
  /** a reference line (the total), drawn dashed */
  dashed?: boolean;
}

export interface UsageChartProps {
  times: string[];
  lines: UsageLine[];
  title: string;
  unit: string;
  timeLabel: string;
  locale: string;
}

export default function UsageChart({ times, lines, title, unit, timeLabel, locale }: UsageChartProps) {
  const format = new Intl.DateTimeFormat(locale, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  const labels = times.map((at) => format.format(new Date(at)));
  const sampled = lines.some((line) => line.values.some((v) => v !== null));
  const option = {
    animation: false,
    grid: { left: 64, right: 24, top: 40, bottom: 40 },
    tooltip: { trigger: "axis" },
    legend: { top: 0, data: lines.map((line) => line.name) },
    xAxis: { type: "category", data: labels, boundaryGap: false },
    yAxis: { type: "value", name: unit, min: 0 },
    series: lines.map((line) => ({
      type: "line",
      name: line.name,
      data: line.values,
      connectNulls: false,
      showSymbol: times.length <= 60,
      lineStyle: line.dashed ? { type: "dashed", width: 1 } : { width: 2 },
    })),
  };
  return (
    <figure className="chart" data-testid="usage-chart" data-points={times.length} data-sampled={sampled}>
      <ReactEChartsCore echarts={echarts} option={option} notMerge style={{ height: 300, width: "100%" }} opts={{ renderer: "svg" }} />
      <figcaption>{title}</figcaption>
      {/* the same figures as a table for screen readers and keyboard users */}
      <details>
        <summary>{title}</summary>
        <table>
          <caption className="sr-only">{title}</caption>
          <thead>
            <tr>
              <th scope="col">{timeLabel}</th>
              {lines.map((line) => <th scope="col" key={line.name}>{line.name}</th>)}
            </tr>
          </thead>
          <tbody>
            {labels.map((label, i) => (
              <tr key={times[i]}>
                <th scope="row">{label}</th>
                {lines.map((line) => <td key={line.name}>{line.values[i] ?? "—"}</td>)}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
