// TR-08: several trainings side by side: their reward curves overlaid, one chosen final metric as bars,
// every final metric in a table, and the training configs where they differ. Refreshed by the saga's
// events (the query is under "trainer"), so a training that finishes fills in without a reload.
import { lazy, Suspense, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { trainer, trainingKeys } from "../../api/training";
import type { Compared } from "../../api/training";
import { ErrorBox, Loading, ResourceText, StatusBadge } from "../../components/common";
import { barsOf, curveSeries, defaultMetric, differingConfig, formatMetric, labelOf, metricRows, parseIds } from "./compareData";

const RewardCurvesChart = lazy(() => import("../../charts/RewardCurvesChart"));
const MetricBarChart = lazy(() => import("../../charts/MetricBarChart"));

export default function Compare() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const ids = parseIds(params.get("ids"));
  const comparison = useQuery({
    queryKey: trainingKeys.compare(ids),
    queryFn: () => trainer.compare(ids),
    enabled: ids.length >= 2,
  });
  const rows = useMemo(() => (comparison.data ? metricRows(comparison.data) : []), [comparison.data]);
  const [chosen, setChosen] = useState("");
  const metric = rows.some((r) => r.metric === chosen) ? chosen : defaultMetric(rows);

  return (
    <section aria-labelledby="compare-title">
      <p><Link to="/trainer">← {t("submit.history")}</Link></p>
      <h1 id="compare-title">{t("compare.title")}</h1>
      {ids.length < 2 ? (
        <p className="notice" role="status">{t("compare.pickTwo")}</p>
      ) : comparison.isPending ? (
        <Loading />
      ) : comparison.isError ? (
        <ErrorBox error={comparison.error} />
      ) : (
        <>
          <table data-testid="compare-requests">
            <caption>{t("compare.requestsCaption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("compare.training")}</th>
                <th scope="col">App</th>
                <th scope="col">{t("compare.status")}</th>
                <th scope="col">{t("compare.resources")}</th>
              </tr>
            </thead>
            <tbody>
              {comparison.data.requests.map((r) => (
                <tr key={r.workload_id} data-workload={r.workload_id}>
                  <th scope="row"><Link to={`/trainer/${encodeURIComponent(r.workload_id)}`}>{labelOf(r)}</Link></th>
                  <td>{r.app_id} <span className="muted">v{r.spec_version}</span></td>
                  <td><StatusBadge status={r.status} label={r.status_label} /></td>
                  <td><ResourceText resources={r.resources} /></td>
                </tr>
              ))}
            </tbody>
          </table>

          <ConfigDifferences requests={comparison.data.requests} />

          <h2>{t("compare.curves")}</h2>
          <Curves data={comparison.data} />

          <h2 id="metrics-title">{t("compare.metrics")}</h2>
          {rows.length === 0 ? (
            <p className="muted">{t("compare.noMetrics")}</p>
          ) : (
            <>
              <label className="filter">
                {t("compare.chartMetric")}
                <select value={metric} onChange={(e) => setChosen(e.target.value)}>
                  {rows.map((r) => <option key={r.metric} value={r.metric}>{r.metric}</option>)}
                </select>
              </label>
              <Suspense fallback={<Loading />}>
                <MetricBarChart {...barsOf(comparison.data, rows, metric)} metric={metric} title={t("compare.barTitle", { metric })} />
              </Suspense>
              <table data-testid="compare-metrics" aria-labelledby="metrics-title">
                <caption>{t("compare.metricsCaption")}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t("compare.metric")}</th>
                    {comparison.data.requests.map((r) => <th scope="col" key={r.workload_id}>{labelOf(r)}</th>)}
                    <th scope="col">{t("compare.spread")}</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((row) => (
                    <tr key={row.metric} data-metric={row.metric}>
                      <th scope="row"><code>{row.metric}</code></th>
                      {row.values.map((v, i) => <td key={i} className="number">{formatMetric(v)}</td>)}
                      <td className="number muted">{formatMetric(row.spread)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </>
      )}
    </section>
  );
}

/** the training settings in which the trainings differ: one row per setting, one column per training */
function ConfigDifferences({ requests }: { requests: Compared[] }) {
  const { t } = useTranslation();
  const keys = differingConfig(requests);
  if (keys.length === 0) return <p className="muted">{t("compare.sameConfig")}</p>;
  return (
    <table data-testid="compare-config">
      <caption>{t("compare.configCaption")}</caption>
      <thead>
        <tr>
          <th scope="col">{t("compare.setting")}</th>
          {requests.map((r) => <th scope="col" key={r.workload_id}>{labelOf(r)}</th>)}
        </tr>
      </thead>
      <tbody>
        {keys.map((key) => (
          <tr key={key} data-setting={key}>
            <th scope="row"><code>{key}</code></th>
            {requests.map((r) => <td key={r.workload_id}><code className="wrap">{JSON.stringify(r.training_config?.[key] ?? null)}</code></td>)}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Curves({ data }: { data: Parameters<typeof curveSeries>[0] }) {
  const { t } = useTranslation();
  const series = curveSeries(data);
  const without = data.requests.filter((r) => !series.some((s) => s.workloadId === r.workload_id));
  return (
    <>
      {series.length > 0 ? (
        <Suspense fallback={<Loading />}>
          <RewardCurvesChart series={series} title={t("compare.curvesTitle")} episodeLabel={t("compare.episode")} rewardLabel={t("compare.reward")} />
        </Suspense>
      ) : null}
      {without.length > 0 && (
        <p className="muted" data-testid="no-curve">
          {t("compare.noCurve", { names: without.map(labelOf).join(", ") })}
        </p>
      )}
      {series.some((s) => s.total > s.points.length) && <p className="muted">{t("compare.thinned")}</p>}
    </>
  );
}
