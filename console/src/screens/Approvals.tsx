// AP-01: the approval inbox, filtered by status, paged by the server.
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get } from "../api/client";
import type { ApprovalSummary, Page } from "../api/types";
import { ErrorBox, Loading, Pager, PriorityBadge, ResourceText, StatusBadge, When } from "../components/common";

// services/approval/domain.py STATUSES
const STATUSES = ["pending", "awaiting approval", "approved", "rejected", "cancelled"];
const PAGE_SIZE = 20;

export default function Approvals() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "";
  const page = Number(params.get("page") ?? "1") || 1;
  const inbox = useQuery({
    queryKey: ["approval", "approvals", { status, page }],
    queryFn: () => get<Page<ApprovalSummary>>("/api/approval/approvals", { status, page, page_size: PAGE_SIZE }),
    placeholderData: (previous) => previous,
  });
  const set = (next: Record<string, string>) => setParams({ ...Object.fromEntries(params), ...next });

  return (
    <section aria-labelledby="approvals-title">
      <h1 id="approvals-title">{t("approvals.title")}</h1>
      <fieldset className="filters">
        <legend>{t("approvals.statusFilter")}</legend>
        {["", ...STATUSES].map((s) => (
          <label key={s || "all"}>
            <input type="radio" name="status" value={s} checked={status === s} onChange={() => set({ status: s, page: "1" })} />
            {s ? t(`status.${s}`) : t("approvals.all")}
          </label>
        ))}
      </fieldset>
      {inbox.isPending ? (
        <Loading />
      ) : inbox.isError ? (
        <ErrorBox error={inbox.error} />
      ) : (
        <>
          <table data-testid="approvals-table">
            <caption>{t("approvals.caption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("approvals.name")}</th>
                <th scope="col">{t("approvals.app")}</th>
                <th scope="col">{t("approvals.requester")}</th>
                <th scope="col">{t("queue.priority")}</th>
                <th scope="col">{t("approvals.resources")}</th>
                <th scope="col">{t("approvals.status")}</th>
                <th scope="col">{t("approvals.loopTest")}</th>
                <th scope="col">{t("approvals.submitted")}</th>
              </tr>
            </thead>
            <tbody>
              {inbox.data.items.length === 0 && (
                <tr><td colSpan={8} className="muted">{t("common.empty")}</td></tr>
              )}
              {inbox.data.items.map((item) => (
                <tr key={item.workload_id} data-workload={item.workload_id}>
                  <td><Link to={`/approvals/${encodeURIComponent(item.workload_id)}`}>{item.name || item.workload_id}</Link></td>
                  <td>{item.app_id}</td>
                  <td>{item.requester}</td>
                  <td><PriorityBadge priority={item.priority} /></td>
                  <td><ResourceText resources={item.resources} /></td>
                  <td>
                    <StatusBadge status={item.status} label={item.status_label} />
                    {item.warning && <span className="warning"> {item.warning}</span>}
                  </td>
                  <td>{item.loop_test_status ? <StatusBadge status={item.loop_test_status} /> : item.auto_approved ? t("approvals.auto") : "—"}</td>
                  <td><When at={item.submitted_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} total={inbox.data.total} onPage={(p) => set({ page: String(p) })} />
        </>
      )}
    </section>
  );
}
