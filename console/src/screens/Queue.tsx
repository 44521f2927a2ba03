// QU-01…QU-05: the waiting work in scheduling order (docs/spec.md §6: order, name, priority, requested
// resources, requester, status, submitted) with why each waits and when it may start (the scheduler's
// wait.py), admin priority change and reorder (drag a row, or its ↑/↓ buttons from the keyboard), cancel;
// then the running and recently ended workloads with their status (QU-04). Live through the SSE stream
// (queue.changed, workload.*). The waiting list is paged by the server and virtualised (10,000 rows).
import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get, patch, post } from "../api/client";
import type { JobSummary, Priority, QueueItem } from "../api/types";
import { useMe } from "../auth/session";
import { ErrorBox, GuardedButton, Loading, PriorityBadge, ResourceText, StatusBadge, When } from "../components/common";
import { usePagedTable, VirtualTable } from "../components/VirtualTable";
import { EstimatedStart, WaitReasonText } from "../components/WaitReason";
import { adminOnly, mayCancel } from "../rules/permissions";
import { dropOf, stepOf, type Move } from "../rules/queue";

const PRIORITIES: Priority[] = ["high", "normal", "low"];
export const QUEUE_PAGE = 200; // rows per server page (GET /queue takes up to 1000)
const COLUMNS = 10;

export function fetchQueuePage(page: number, size: number) {
  return get<{ items: QueueItem[]; count: number }>("/api/scheduler/queue", { limit: size, offset: page * size })
    .then((r) => ({ items: r.items, total: r.count }));
}

export default function Queue() {
  const { t } = useTranslation();
  const me = useMe().data;
  const client = useQueryClient();
  const [actionError, setActionError] = useState<unknown>(null);
  const [dragging, setDragging] = useState<number | null>(null);
  const [over, setOver] = useState<number | null>(null);
  const { rows, virtualizer, scrollRef } = usePagedTable(["scheduler", "queue"], QUEUE_PAGE, fetchQueuePage, 56);
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
  const move = (item: QueueItem, body: Move | null) => body && change.mutate({ id: item.job_id, body: body as Record<string, string> });
  const drop = (to: number) => {
    const target = rows.rowAt(to);
    const from = dragging;
    setDragging(null);
    setOver(null);
    if (from === null || !target) return;
    const dragged = rows.rowAt(from);
    if (dragged) move(dragged, dropOf(from, to, target));
  };

  const row = (index: number, ref: (node: Element | null) => void) => {
    const item = rows.rowAt(index);
    if (!item) {
      return (
        <tr key={`loading-${index}`} ref={ref} data-index={index} aria-rowindex={index + 2}>
          <td>{index + 1}</td>
          <td colSpan={COLUMNS - 1} className="muted">{t("runs.list.loadingRow")}</td>
        </tr>
      );
    }
    const name = item.name || item.workload_id;
    const up = stepOf(rows.rowAt(index - 1), rows.rowAt(index + 1), "up");
    const down = stepOf(rows.rowAt(index - 1), rows.rowAt(index + 1), "down");
    const isTest = item.kind === "looptest";
    const draggable = !notAdmin && !change.isPending;
    return (
      <tr
        key={item.job_id}
        ref={ref}
        data-index={index}
        aria-rowindex={index + 2}
        data-workload={item.workload_id}
        className={over === index && dragging !== null && dragging !== index ? "drop-target" : undefined}
        draggable={draggable}
        onDragStart={draggable ? (e) => { setDragging(index); e.dataTransfer.effectAllowed = "move"; e.dataTransfer.setData("text/plain", item.job_id); } : undefined}
        onDragOver={draggable ? (e) => { e.preventDefault(); if (over !== index) setOver(index); } : undefined}
        onDragEnd={() => { setDragging(null); setOver(null); }}
        onDrop={draggable ? (e) => { e.preventDefault(); drop(index); } : undefined}
      >
        <td>{item.position}</td>
        <td>
          <Link to={`/trainer/${encodeURIComponent(item.workload_id)}`}>{name}</Link>
          {isTest && <span className="badge">{t("queue.loopTest")}</span>}{" "}
          <Link className="small" to={`/runs/${encodeURIComponent(item.workload_id)}`} aria-label={`${name}: ${t("runs.viewRun")}`}>
            {t("runs.viewRun")}
          </Link>
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
        <td data-testid="wait-reason"><WaitReasonText reason={item.wait_reason} /></td>
        <td data-testid="estimated-start"><EstimatedStart at={item.estimated_start} /></td>
        <td><When at={item.submitted_at} /></td>
        <td className="actions">
          <GuardedButton
            verdict={notAdmin ?? (up ? null : { reason: "why.first" })}
            busy={change.isPending}
            label={t("queue.moveUp", { name })}
            onClick={() => move(item, up)}
          >
            ↑ {t("queue.up")}
          </GuardedButton>
          <GuardedButton
            verdict={notAdmin ?? (down ? null : { reason: "why.last" })}
            busy={change.isPending}
            label={t("queue.moveDown", { name })}
            onClick={() => move(item, down)}
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
  };

  return (
    <section aria-labelledby="queue-title">
      <h1 id="queue-title">{t("queue.title")}</h1>
      <ErrorBox error={actionError} />
      {!notAdmin && <p className="muted">{t("runs.list.dragHint")}</p>}
      {rows.isPending ? (
        <Loading />
      ) : rows.error && rows.total === 0 ? (
        <ErrorBox error={rows.error} />
      ) : (
        <VirtualTable
          virtualizer={virtualizer}
          scrollRef={scrollRef}
          testId="queue-table"
          label={t("runs.list.scrollRegion", { name: t("queue.title") })}
          caption={t("queue.caption")}
          columns={COLUMNS}
          empty={t("common.empty")}
          head={
            <tr aria-rowindex={1}>
              <th scope="col">{t("queue.order")}</th>
              <th scope="col">{t("queue.name")}</th>
              <th scope="col">{t("queue.priority")}</th>
              <th scope="col">{t("queue.resources")}</th>
              <th scope="col">{t("queue.requester")}</th>
              <th scope="col">{t("queue.status")}</th>
              <th scope="col">{t("runs.wait.reason")}</th>
              <th scope="col">{t("runs.wait.estimated")}</th>
              <th scope="col">{t("queue.submitted")}</th>
              <th scope="col">{t("queue.actions")}</th>
            </tr>
          }
          renderRow={row}
        />
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
                <td>
                  <Link to={`/trainer/${encodeURIComponent(job.workload_id)}`}>{job.name || job.workload_id}</Link>{" "}
                  <Link className="small" to={`/runs/${encodeURIComponent(job.workload_id)}`} aria-label={`${job.name || job.workload_id}: ${t("runs.viewRun")}`}>
                    {t("runs.viewRun")}
                  </Link>
                </td>
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
