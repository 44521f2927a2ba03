// The runs screens: /runs lists the running and recent workloads, /runs/:workloadId one workload's DAG and
// logs (App.tsx mounts this lazily as one chunk).
import { Link, Route, Routes } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get } from "../../api/client";
import type { JobSummary } from "../../api/types";
import { ErrorBox, Loading, PriorityBadge, StatusBadge, When } from "../../components/common";
import RunDetail from "./RunDetail";

function RunList() {
  const { t } = useTranslation();
  const list = useQuery({
    queryKey: ["scheduler", "workloads", "runs"],
    queryFn: () => get<{ items: JobSummary[]; count: number }>("/api/scheduler/workloads", { limit: 100 }),
  });
  return (
    <section aria-labelledby="runs-title">
      <h1 id="runs-title">{t("runs.title")}</h1>
      {list.isPending ? <Loading /> : list.isError ? <ErrorBox error={list.error} /> : (
        <table data-testid="runs-table">
          <caption>{t("runs.listCaption")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("queue.name")}</th>
              <th scope="col">{t("queue.priority")}</th>
              <th scope="col">{t("runs.requester")}</th>
              <th scope="col">{t("runs.status")}</th>
              <th scope="col">{t("runs.started")}</th>
              <th scope="col">{t("runs.finished")}</th>
            </tr>
          </thead>
          <tbody>
            {list.data.items.length === 0 && <tr><td colSpan={6} className="muted">{t("common.empty")}</td></tr>}
            {list.data.items.map((job) => (
              <tr key={job.job_id} data-workload={job.workload_id}>
                <td><Link to={`/runs/${encodeURIComponent(job.workload_id)}`}>{job.name || job.workload_id}</Link></td>
                <td><PriorityBadge priority={job.priority} /></td>
                <td>{job.requester}</td>
                <td><StatusBadge status={job.status} /></td>
                <td><When at={job.started_at} /></td>
                <td><When at={job.finished_at} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export default function RunsRoutes() {
  return (
    <Routes>
      <Route index element={<RunList />} />
      <Route path=":workloadId" element={<RunDetail />} />
    </Routes>
  );
}
