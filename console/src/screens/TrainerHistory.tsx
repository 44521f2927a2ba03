// TR-07: the training history with the seed's statuses, filterable, paged by the server.
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get } from "../api/client";
import type { Page, TrainingSummary } from "../api/types";
import { ErrorBox, Loading, Pager, PriorityBadge, ResourceText, StatusBadge, When } from "../components/common";

// services/trainer/domain.py STATUSES
export const TRAINER_STATUSES = [
  "waiting", "awaiting approval", "approved", "queued", "running", "completed",
  "completed (model not stored yet)", "model stored", "rejected", "failed", "cancelled", "refused",
];
const PAGE_SIZE = 20;

export default function TrainerHistory() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "";
  const page = Number(params.get("page") ?? "1") || 1;
  const history = useQuery({
    queryKey: ["trainer", "training-requests", { status, page }],
    queryFn: () =>
      get<Page<TrainingSummary>>("/api/trainer/training-requests", { status, page, page_size: PAGE_SIZE }),
    placeholderData: (previous) => previous,
  });
  const set = (next: Record<string, string>) => setParams({ ...Object.fromEntries(params), ...next });

  return (
    <section aria-labelledby="trainer-title">
      <h1 id="trainer-title">{t("trainer.title")}</h1>
      <label className="filter">
        {t("trainer.statusFilter")}{" "}
        <select value={status} onChange={(e) => set({ status: e.target.value, page: "1" })}>
          <option value="">{t("trainer.all")}</option>
          {TRAINER_STATUSES.map((s) => (
            <option key={s} value={s}>{t(`status.${s}`)}</option>
          ))}
        </select>
      </label>
      {history.isPending ? (
        <Loading />
      ) : history.isError ? (
        <ErrorBox error={history.error} />
      ) : (
        <>
          <table data-testid="trainer-table">
            <caption>{t("trainer.caption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("trainer.name")}</th>
                <th scope="col">{t("trainer.app")}</th>
                <th scope="col">{t("trainer.priority")}</th>
                <th scope="col">{t("trainer.resources")}</th>
                <th scope="col">{t("trainer.requester")}</th>
                <th scope="col">{t("trainer.status")}</th>
                <th scope="col">{t("trainer.submitted")}</th>
              </tr>
            </thead>
            <tbody>
              {history.data.items.length === 0 && (
                <tr><td colSpan={7} className="muted">{t("common.empty")}</td></tr>
              )}
              {history.data.items.map((item) => (
                <tr key={item.workload_id} data-workload={item.workload_id}>
                  <td><Link to={`/trainer/${encodeURIComponent(item.workload_id)}`}>{item.name || item.workload_id}</Link></td>
                  <td>{item.app_id} <span className="muted">v{item.spec_version}</span></td>
                  <td><PriorityBadge priority={item.priority} /></td>
                  <td><ResourceText resources={item.resources} /></td>
                  <td>{item.requester}</td>
                  <td><StatusBadge status={item.status} label={item.status_label} /></td>
                  <td><When at={item.submitted_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} total={history.data.total} onPage={(p) => set({ page: String(p) })} />
        </>
      )}
    </section>
  );
}
