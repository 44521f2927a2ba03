// RS-05: what each running workload was allocated and what it actually uses (null: not measured here).
import { Link } from "react-router";
import { useTranslation } from "react-i18next";
import type { WorkloadUsage } from "../../api/resources";
import { count, gigabytes } from "./figures";

export default function WorkloadUsageTable({ items }: { items: WorkloadUsage[] }) {
  const { t } = useTranslation();
  const unmeasured = <span className="muted" title={t("cluster.notMeasuredHint")}>{t("cluster.notMeasured")}</span>;
  return (
    <table data-testid="workload-usage-table">
      <caption>{t("cluster.workloadsCaption")}</caption>
      <thead>
        <tr>
          <th scope="col">{t("cluster.workload")}</th>
          <th scope="col">{t("cluster.requester")}</th>
          <th scope="col">{t("cluster.placedOn")}</th>
          <th scope="col">{t("cluster.allocated")}</th>
          <th scope="col">{t("cluster.actual")}</th>
        </tr>
      </thead>
      <tbody>
        {items.length === 0 && (
          <tr><td colSpan={5} className="muted">{t("common.empty")}</td></tr>
        )}
        {items.map((item) => {
          const nodes = [...new Set(item.components.map((c) => c.allocation?.node).filter(Boolean))];
          const { used } = item;
          return (
            <tr key={item.job_id} data-workload={item.workload_id}>
              <th scope="row"><Link to={`/runs/${encodeURIComponent(item.workload_id)}`}>{item.name || item.workload_id}</Link></th>
              <td>{item.requester}</td>
              <td>{nodes.join(", ") || "—"}</td>
              <td>
                GPU {item.allocated.gpus} · {t("cluster.memory")} {gigabytes(item.allocated.memory_bytes)} ·{" "}
                {t("cluster.cores", { count: count(item.allocated.cpu) })}
              </td>
              <td>
                GPU {used.gpus ?? unmeasured} · {t("cluster.memory")}{" "}
                {used.memory_bytes === null ? unmeasured : gigabytes(used.memory_bytes)} ·{" "}
                {used.cpu_cores === null ? unmeasured : t("cluster.cores", { count: count(used.cpu_cores) })}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
