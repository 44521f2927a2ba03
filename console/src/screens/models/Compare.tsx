// MD-06: two to ten models' summary metrics side by side: a table with each metric's best value marked
// and the same figures as bars.
import { lazy, Suspense } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { fetchComparison, modelKeys } from "../../api/models";
import { ErrorBox, Loading, When } from "../../components/common";
import { bestOf } from "../../rules/aliases";

const MetricBars = lazy(() => import("../../charts/MetricBars"));

export default function ModelCompare() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const ids = (params.get("ids") ?? "").split(",").map((id) => id.trim()).filter(Boolean);
  const comparison = useQuery({ queryKey: modelKeys.compare(ids), queryFn: () => fetchComparison(ids), enabled: ids.length >= 2 });
  const title = <h1 id="compare-title">{t("models.compareTitle")}</h1>;
  if (ids.length < 2) return <section aria-labelledby="compare-title">{title}<p>{t("models.pickTwo")}</p></section>;
  if (comparison.isPending) return <Loading />;
  if (comparison.isError) return <section aria-labelledby="compare-title">{title}<ErrorBox error={comparison.error} /></section>;
  const { models, metrics } = comparison.data;
  const label = (m: (typeof models)[number]) => `${m.name} v${m.version}`;
  return (
    <section aria-labelledby="compare-title">
      <p><Link to={`/models/${encodeURIComponent(models[0].model_id)}`}>← {t("common.back")}</Link></p>
      {title}
      <table data-testid="compare-table">
        <caption>{t("models.compareCaption", { count: models.length })}</caption>
        <thead>
          <tr>
            <th scope="col">{t("models.metric")}</th>
            {models.map((m) => (
              <th scope="col" key={m.model_id}>
                <Link to={`/models/${encodeURIComponent(m.model_id)}`}>{label(m)}</Link>
                <br />
                <span className="muted"><When at={m.created_at} /></span>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {Object.keys(metrics).length === 0 && (
            <tr><td colSpan={models.length + 1} className="muted">{t("models.noMetrics")}</td></tr>
          )}
          {Object.entries(metrics).map(([metric, values]) => {
            const best = bestOf(metric, values);
            return (
              <tr key={metric} data-metric={metric}>
                <th scope="row">{metric}</th>
                {models.map((m) => (
                  <td key={m.model_id} className={m.model_id === best ? "best" : undefined} data-best={m.model_id === best || undefined}>
                    {values[m.model_id] ?? "—"}
                    {m.model_id === best && <span className="sr-only"> ({t("models.best")})</span>}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
      {Object.keys(metrics).length > 0 && (
        <Suspense fallback={<Loading />}>
          <MetricBars metrics={metrics} series={models.map((m) => ({ id: m.model_id, label: label(m) }))} title={t("models.compareChart")} />
        </Suspense>
      )}
    </section>
  );
}
