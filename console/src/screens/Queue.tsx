// QU-01…QU-05: the waiting work in scheduling order (docs/spec.md §6: order, name, priority, requested
// resources, requester, status, submitted), admin priority change and reorder, cancel; then the running
// and recently ended workloads with their status (QU-04). Live through the SSE stream.
import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get, patch, post } from "../api/client";
import type { JobSummary, Priority, QueueItem } from "../api/types";
import { useMe } from "../auth/session";
import { ErrorBox, GuardedButton, Loading, PriorityBadge, ResourceText, StatusBadge, When } from "../components/common";
import { adminOnly, mayCancel } from "../rules/permissions";
import { moveOf } from "../rules/queue";

const PRIORITIES: Priority[] = ["high", "normal", "low"];

export default function Queue() {
  const { t } = useTranslation();
  const me = useMe().data;
  const client = useQueryClient();
  const [actionError, setActionError] = useState<unknown>(null);
  const queue = useQuery({
    queryKey: ["scheduler", "queue"],
    queryFn: () => get<{ items: QueueItem[]; count: number }>("/api/scheduler/queue", { limit: 500 }),
  });
  const recent = useQuery({
    queryKey: ["scheduler", "workloads"],
    queryFn: () => get<{ items: JobSummary[]; count: number }>("/api/scheduler/workloads", { limit: 20 }),
  });
  const done = () => {
    setActionError(null);
    void client.invalidateQueries({ queryKey: ["scheduler"] });
  };
  const change = useMutation({
    mutationFn: ({ id, body }: { id: string; body: Record<string, string> }) =>
      patch(`/api/scheduler/queue/${encodeURIComponent(id)}`, body),
    onSuccess: done,
    onError: setActionError,
  });
  const cancel = useMutation({
    mutationFn: (id: string) => post(`/api/trainer/training-requests/${encodeURIComponent(id)}/cancel`),
    onSuccess: () => {
      done();
      void client.invalidateQueries({ queryKey: ["trainer"] });
    },
    onError: setActionError,
  });
  const notAdmin = adminOnly(me?.role);
  const items = queue.data?.items ?? [];

  return (
    <section aria-labelledby="queue-title">
      <h1 id="queue-title">{t("queue.title")}</h1>
      <ErrorBox error={actionError} />
      {queue.isPending ? (
        <Loading />
      ) : queue.isError ? (
        <ErrorBox error={queue.error} />
      ) : (
        <table data-testid="queue-table">
          <caption>{t("queue.caption")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("queue.order")}</th>
              <th scope="col">{t("queue.name")}</th>
              <th scope="col">{t("queue.priority")}</th>
              <th scope="col">{t("queue.resources")}</th>
              <th scope="col">{t("queue.requester")}</th>
              <th scope="col">{t("queue.status")}</th>
              <th scope="col">{t("queue.submitted")}</th>
              <th scope="col">{t("queue.actions")}</th>
            </tr>
          </thead>
          <tbody>
            {items.length === 0 && (
              <tr>
                <td colSpan={8} className="muted">{t("common.empty")}</td>
              </tr>
            )}
            {items.map((item, index) => {
              const name = item.name || item.workload_id;
              const up = moveOf(items, index, "up");
              const down = moveOf(items, index, "down");
              const isTest = item.kind === "looptest";
              return (
                <tr key={item.job_id} data-workload={item.workload_id}>
                  <td>{item.position}</td>
                  <td>
                    <Link to={`/trainer/${encodeURIComponent(item.workload_id)}`}>{name}</Link>
                    {isTest && <span className="badge">{t("queue.loopTest")}</span>}
                  </td>
                  <td>
                    {notAdmin ? (
                      <PriorityBadge priority={item.priority} />
                    ) : (
                      <label>
                        <span className="sr-only">{t("queue.priorityOf", { name })}</span>
                        <select
                          value={item.priority}
                          disabled={change.isPending}
                          onChange={(e) => change.mutate({ id: item.job_id, body: { priority: e.target.value } })}
                        >
                          {PRIORITIES.map((p) => (
                            <option key={p} value={p}>{t(`priority.${p}`)}</option>
                          ))}
                        </select>
                      </label>
                    )}
                  </td>
                  <td><ResourceText resources={item.resources} /></td>
                  <td>{item.requester}</td>
                  <td><StatusBadge status={item.status} /></td>
                  <td><When at={item.submitted_at} /></td>
                  <td className="actions">
                    <GuardedButton
                      verdict={notAdmin ?? (up ? null : { reason: "why.first" })}
                      busy={change.isPending}
                      label={t("queue.moveUp", { name })}
                      onClick={() => up && change.mutate({ id: item.job_id, body: up as Record<string, string> })}
                    >
                      ↑ {t("queue.up")}
                    </GuardedButton>
                    <GuardedButton
                      verdict={notAdmin ?? (down ? null : { reason: "why.last" })}
                      busy={change.isPending}
                      label={t("queue.moveDown", { name })}
                      onClick={() => down && change.mutate({ id: item.job_id, body: down as Record<string, string> })}
                    >
                      ↓ {t("queue.down")}
                    </GuardedButton>
                    {!isTest && (
                      <GuardedButton
                        verdict={mayCancel(me, item.requester)}
                        busy={cancel.isPending}
                        label={t("queue.cancelOf", { name })}
                        onClick={() => window.confirm(t("queue.confirmCancel", { name })) && cancel.mutate(item.workload_id)}
                      >
                        {t("common.cancel")}
                      </GuardedButton>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}

      <h2 id="recent-title">{t("queue.recent")}</h2>
      {recent.isPending ? (
        <Loading />
      ) : recent.isError ? (
        <ErrorBox error={recent.error} />
      ) : (
        <table data-testid="recent-table" aria-labelledby="recent-title">
          <caption className="sr-only">{t("queue.recentCaption")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("queue.name")}</th>
              <th scope="col">{t("queue.priority")}</th>
              <th scope="col">{t("queue.requester")}</th>
              <th scope="col">{t("queue.status")}</th>
              <th scope="col">{t("queue.submitted")}</th>
              <th scope="col">{t("queue.started")}</th>
              <th scope="col">{t("queue.finished")}</th>
            </tr>
          </thead>
          <tbody>
            {recent.data.items.length === 0 && (
              <tr>
                <td colSpan={7} className="muted">{t("common.empty")}</td>
              </tr>
            )}
            {recent.data.items.map((job) => (
              <tr key={job.job_id} data-workload={job.workload_id}>
                <td><Link to={`/trainer/${encodeURIComponent(job.workload_id)}`}>{job.name || job.workload_id}</Link></td>
                <td><PriorityBadge priority={job.priority} /></td>
                <td>{job.requester}</td>
                <td><StatusBadge status={job.status} /></td>
                <td><When at={job.submitted_at} /></td>
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
