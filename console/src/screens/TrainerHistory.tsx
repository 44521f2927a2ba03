// TR-07: the training history with the seed's statuses, filterable, paged by the server and virtualised
// (only the rows in view render: 10,000 requests stay responsive).
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useTranslation } from "react-i18next";
import { get } from "../api/client";
import type { Page, TrainingSummary } from "../api/types";
import { ErrorBox, GuardedButton, Loading, PriorityBadge, ResourceText, StatusBadge, When } from "../components/common";
import { usePagedTable, VirtualTable } from "../components/VirtualTable";
import { compareVerdict } from "./training/compareData";

// services/trainer/domain.py STATUSES
export const TRAINER_STATUSES = [
  "waiting", "awaiting approval", "approved", "queued", "running", "completed",
  "completed (model not stored yet)", "model stored", "rejected", "failed", "cancelled", "refused",
];
const PAGE_SIZE = 100; // the trainer's largest page (services/kit/paging.py)

export default function TrainerHistory() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "";
  const { rows, virtualizer, scrollRef } = usePagedTable(
    ["trainer", "training-requests", { status }],
    PAGE_SIZE,
    (page, size) => get<Page<TrainingSummary>>("/api/trainer/training-requests", { status, page: page + 1, page_size: size }),
    44,
  );
  const set = (next: Record<string, string>) => setParams({ ...Object.fromEntries(params), ...next });
  // TR-08: the trainings ticked here, across pages and filters, in the order they were ticked
  const [picked, setPicked] = useState<string[]>([]);
  const navigate = useNavigate();
  const toggle = (id: string) => setPicked((ids) => (ids.includes(id) ? ids.filter((x) => x !== id) : [...ids, id]));

  return (
    <section aria-labelledby="trainer-title">
      <h1 id="trainer-title">{t("trainer.title")}</h1>
      <div className="toolbar">
        <Link to="/trainer/new" className="button primary">{t("submit.new")}</Link>
        <GuardedButton verdict={compareVerdict(picked)} onClick={() => navigate(`/trainer/compare?ids=${picked.map(encodeURIComponent).join(",")}`)}>
          {t("compare.compareSelected", { count: picked.length })}
        </GuardedButton>
      </div>
      <label className="filter">
        {t("trainer.statusFilter")}{" "}
        <select value={status} onChange={(e) => set({ status: e.target.value })}>
          <option value="">{t("trainer.all")}</option>
          {TRAINER_STATUSES.map((s) => (
            <option key={s} value={s}>{t(`status.${s}`)}</option>
          ))}
        </select>
      </label>
      {rows.isPending ? (
        <Loading />
      ) : rows.error && rows.total === 0 ? (
        <ErrorBox error={rows.error} />
      ) : (
        <VirtualTable
          virtualizer={virtualizer}
          scrollRef={scrollRef}
          testId="trainer-table"
          label={t("runs.list.scrollRegion", { name: t("trainer.title") })}
          caption={t("trainer.caption")}
          columns={8}
          empty={t("common.empty")}
          head={
              <tr aria-rowindex={1}>
                <th scope="col">{t("compare.select")}</th>
                <th scope="col">{t("trainer.name")}</th>
                <th scope="col">{t("trainer.app")}</th>
                <th scope="col">{t("trainer.priority")}</th>
                <th scope="col">{t("trainer.resources")}</th>
                <th scope="col">{t("trainer.requester")}</th>
                <th scope="col">{t("trainer.status")}</th>
                <th scope="col">{t("trainer.submitted")}</th>
              </tr>
          }
          renderRow={(index, ref) => {
            const item = rows.rowAt(index);
            if (!item) {
              return (
                <tr key={`loading-${index}`} ref={ref} data-index={index} aria-rowindex={index + 2}>
                  <td colSpan={8} className="muted">{t("runs.list.loadingRow")}</td>
                </tr>
              );
            }
            return (
                <tr key={item.workload_id} ref={ref} data-index={index} aria-rowindex={index + 2} data-workload={item.workload_id}>
                  <td>
                    <input type="checkbox" checked={picked.includes(item.workload_id)} onChange={() => toggle(item.workload_id)}
                      aria-label={t("compare.selectOf", { name: item.name || item.workload_id })} />
                  </td>
                  <td><Link to={`/trainer/${encodeURIComponent(item.workload_id)}`}>{item.name || item.workload_id}</Link></td>
                  <td>{item.app_id} <span className="muted">v{item.spec_version}</span></td>
                  <td><PriorityBadge priority={item.priority} /></td>
                  <td><ResourceText resources={item.resources} /></td>
                  <td>{item.requester}</td>
                  <td><StatusBadge status={item.status} label={item.status_label} /></td>
                  <td><When at={item.submitted_at} /></td>
                </tr>
            );
          }}
        />
      )}
    </section>
  );
}
