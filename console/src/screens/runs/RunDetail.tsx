// SC-03 / SC-05 at /runs/:workloadId: the workload's DAG per Task with each component's live state, timings
// and allocation; a component's log tailed while it runs and readable after it ends. Live: workload.* events
// refetch the scheduler's view (invalidation.ts, root "scheduler"); between them, the tailed log's stream
// ending says its component ended, which refetches it too.
import { useEffect, useMemo, useState } from "react";
import { Link, useParams } from "react-router";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { ApiError, get } from "../../api/client";
import { fetchWorkloadRuns, LIVE, runKeys, type ComponentRun, type SpecTask } from "../../api/runs";
import type { ModelDetail, TrainingDetail } from "../../api/types";
import { ErrorBox, Loading, PriorityBadge, StatusBadge, When } from "../../components/common";
import { taskDags } from "./dag";
import DagView, { allocationText, timingText } from "./DagView";
import LogView from "./LogView";

const keyOf = (run: ComponentRun) => `${run.task_id}/${run.component_id}`;
const GAP_RECHECK_MS = 1500; // between two components of a running DAG nothing streams: look once more

/** The component whose log to show first: a live one, else the last that ran, else the first. */
export function defaultPick(runs: ComponentRun[]): ComponentRun | null {
  return runs.find((r) => LIVE.has(r.status))
    ?? [...runs].reverse().find((r) => r.started_at !== null)
    ?? runs[0] ?? null;
}

export default function RunDetail() {
  const { t } = useTranslation();
  const { workloadId = "" } = useParams();
  const client = useQueryClient();
  const runs = useQuery({
    queryKey: runKeys.workload(workloadId),
    queryFn: () => fetchWorkloadRuns(workloadId),
    retry: (count, error) => !(error instanceof ApiError && error.status === 404) && count < 2,
  });
  const request = useQuery({
    queryKey: runKeys.spec(workloadId),
    queryFn: () => get<TrainingDetail & { spec?: { tasks?: SpecTask[] } }>(`/api/trainer/training-requests/${encodeURIComponent(workloadId)}`),
    retry: false,
  });
  const modelId = request.data?.model?.model_id;
  const model = useQuery({
    queryKey: ["models", "model", modelId],
    queryFn: () => get<ModelDetail>(`/api/models/models/${encodeURIComponent(modelId!)}`),
    enabled: !!modelId,
  });
  const [picked, setPicked] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());

  const components = runs.data?.components ?? [];
  const anyLive = components.some((r) => LIVE.has(r.status));
  const running = runs.data?.status === "running";
  // the clock of the running components' timings (a redraw, not a request)
  useEffect(() => {
    if (!anyLive) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [anyLive]);
  const refetch = () => void client.invalidateQueries({ queryKey: runKeys.workload(workloadId) });
  useEffect(() => {
    if (!running || anyLive) return;
    const timer = setTimeout(refetch, GAP_RECHECK_MS);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [running, anyLive, runs.dataUpdatedAt]);

  const dags = useMemo(() => taskDags(request.data?.spec?.tasks, components), [request.data, components]);
  const chosen = components.find((r) => keyOf(r) === picked) ?? defaultPick(components);
  const modelLog = chosen
    ? model.data?.run_logs.find((l) => l.task_id === chosen.task_id && l.component_id === chosen.component_id)?.download ?? null
    : null;

  if (runs.isPending) return <Loading />;
  const notYet = runs.error instanceof ApiError && runs.error.status === 404;
  const d = runs.data;
  const title = d?.name || request.data?.name || workloadId;
  return (
    <section aria-labelledby="run-title">
      <p><Link to="/runs">← {t("common.back")}</Link></p>
      <h1 id="run-title">{t("runs.detail", { name: title })}</h1>
      {notYet ? (
        <p className="notice" data-testid="not-scheduled">{t("runs.notScheduled")}</p>
      ) : runs.isError ? (
        <ErrorBox error={runs.error} />
      ) : d && (
        <>
          <dl className="facts">
            <dt>ID</dt><dd>{d.workload_id} · <Link to={`/trainer/${encodeURIComponent(workloadId)}`}>{t("runs.trainer")}</Link></dd>
            <dt>{t("runs.status")}</dt><dd data-testid="run-status">{d.status ? <StatusBadge status={d.status} /> : "—"}</dd>
            {d.priority && (<><dt>{t("queue.priority")}</dt><dd><PriorityBadge priority={d.priority} /></dd></>)}
            {d.requester && (<><dt>{t("runs.requester")}</dt><dd>{d.requester}</dd></>)}
            {d.position ? (<><dt>{t("runs.position")}</dt><dd>{d.position}</dd></>) : null}
            <dt>{t("runs.started")}</dt><dd><When at={d.started_at} /></dd>
            <dt>{t("runs.finished")}</dt><dd><When at={d.finished_at} /></dd>
            {d.max_runtime_s ? (<><dt>{t("runs.deadline")}</dt><dd>{Math.round(d.max_runtime_s / 60)}m{d.deadline && <> (<When at={d.deadline} />)</>}</dd></>) : null}
            {d.failure && (<><dt>{t("runs.failure")}</dt><dd className="warning">{d.failure.reason}</dd></>)}
          </dl>

          <h2>{t("runs.dag")}</h2>
          {dags.map((dag) => (
            <DagView key={dag.taskId} dag={dag} now={now} selected={chosen ? keyOf(chosen) : null}
              onSelect={(run) => setPicked(keyOf(run))} />
          ))}

          <table data-testid="components-table">
            <caption>{t("runs.components")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("runs.task")}</th>
                <th scope="col">{t("runs.component")}</th>
                <th scope="col">{t("runs.status")}</th>
                <th scope="col">{t("runs.node")} · {t("runs.gpus")}</th>
                <th scope="col">{t("runs.started")}</th>
                <th scope="col">{t("runs.timing")}</th>
                <th scope="col">{t("runs.logs")}</th>
              </tr>
            </thead>
            <tbody>
              {components.length === 0 && <tr><td colSpan={7} className="muted">{t("common.empty")}</td></tr>}
              {components.map((run) => (
                <tr key={`${keyOf(run)}/${run.round}`} data-component={run.component_id} data-status={run.status}
                  aria-current={chosen && keyOf(chosen) === keyOf(run) ? "true" : undefined}>
                  <td>{run.task_id}{run.round > 1 ? ` · #${run.round}` : ""}</td>
                  <td>{run.name} <span className="muted">({run.component_id})</span></td>
                  <td>
                    <span className={`badge run-badge run-${run.status}`}>{t(`runs.run.${run.status}`, { defaultValue: run.status })}</span>
                    {run.exit_code !== null && run.exit_code !== 0 && <span className="muted"> {t("runs.exit", { code: run.exit_code })}</span>}
                    {run.reason && <div className="muted small">{run.reason}</div>}
                    {run.rerun_reason && <div className="muted small">{t("runs.rerun", { reason: run.rerun_reason })}</div>}
                  </td>
                  <td>{allocationText(run, t("runs.noAllocation"))}</td>
                  <td><When at={run.started_at} /></td>
                  <td>{timingText(run, now)}</td>
                  <td>
                    <button type="button" onClick={() => setPicked(keyOf(run))} aria-pressed={chosen ? keyOf(chosen) === keyOf(run) : false}
                      aria-label={`${t("runs.logs")}: ${run.name}`}>
                      {t("runs.logs")}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>

          <h2 id="logs-title">{chosen ? t("runs.logOf", { name: chosen.name }) : t("runs.logs")}</h2>
          {chosen && <LogView workloadId={workloadId} run={chosen} modelLog={modelLog} onEnded={refetch} />}
        </>
      )}
    </section>
  );
}
