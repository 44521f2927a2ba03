// RS-01…RS-03: the seed's §7.2 table (total / requested / actually used / idle per GPU type, memory, CPU).
import { useTranslation } from "react-i18next";
import type { ClusterResources } from "../../api/resources";
import { usageRows, type Cell, type UsageRow } from "./figures";

function Figure({ cell }: { cell: Cell | null }) {
  const { t } = useTranslation();
  if (!cell) {
    return (
      <span className="muted" title={t("cluster.notMeasuredHint")}>
        {t("cluster.notMeasured")}
      </span>
    );
  }
  return (
    <span>
      {cell.text}
      {cell.percent !== null && <span className="share"> ({cell.percent}%)</span>}
    </span>
  );
}

function label(row: UsageRow, t: (key: string, values?: Record<string, string>) => string): string {
  if (row.kind === "gpu") return t("cluster.gpuOf", { type: row.gpuType ?? "" });
  if (row.kind === "gpuTotal") return t("cluster.gpuTotal");
  return t(`cluster.${row.kind}`);
}

export default function ClusterTable({ resources }: { resources: ClusterResources }) {
  const { t } = useTranslation();
  const rows = usageRows(resources);
  const unmeasured = rows.some((row) => row.used === null);
  return (
    <>
      <table data-testid="cluster-table" className="figures">
        <caption>{t("cluster.caption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("cluster.resource")}</th>
            <th scope="col">{t("cluster.total")}</th>
            <th scope="col">{t("cluster.requested")}</th>
            <th scope="col">{t("cluster.used")}</th>
            <th scope="col">{t("cluster.idle")}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.key} data-resource={row.key} className={row.kind === "gpuTotal" ? "sum" : undefined}>
              <th scope="row">{label(row, t)}</th>
              <td>{row.total}</td>
              <td data-col="requested"><Figure cell={row.requested} /></td>
              <td data-col="used"><Figure cell={row.used} /></td>
              <td data-col="idle"><Figure cell={row.idle} /></td>
            </tr>
          ))}
        </tbody>
      </table>
      {unmeasured && <p className="muted">{t("cluster.notMeasured")}: {t("cluster.notMeasuredHint")}</p>}
    </>
  );
}
