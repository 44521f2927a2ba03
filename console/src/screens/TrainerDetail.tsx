// TR-07: one training request with its saga timeline, redrawn as its events arrive.
import { Link, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get, post } from "../api/client";
import type { TrainingDetail as Detail } from "../api/types";
import { useMe } from "../auth/session";
import { ErrorBox, GuardedButton, JsonBlock, Loading, PriorityBadge, ResourceText, StatusBadge, When } from "../components/common";
import { mayCancel } from "../rules/permissions";

const CANCELLABLE = new Set(["waiting", "awaiting approval", "approved", "queued", "running"]);

/** the gateway's stream may deliver a workload's events out of order: the timeline is ordered by time */
export function ordered<T extends { at: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

export default function TrainerDetail() {
  const { t } = useTranslation();
  const { id = "" } = useParams();
  const me = useMe().data;
  const client = useQueryClient();
  const detail = useQuery({
    queryKey: ["trainer", "training-request", id],
    queryFn: () => get<Detail>(`/api/trainer/training-requests/${encodeURIComponent(id)}`),
  });
  const cancel = useMutation({
    mutationFn: () => post(`/api/trainer/training-requests/${encodeURIComponent(id)}/cancel`),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["trainer"] }),
  });

  if (detail.isPending) return <Loading />;
  if (detail.isError) return <ErrorBox error={detail.error} />;
  const d = detail.data;
  const modelId = d.model?.model_id;
  return (
    <section aria-labelledby="detail-title">
      <p><Link to="/trainer">← {t("common.back")}</Link></p>
      <h1 id="detail-title">{t("trainer.detail", { id: d.name || d.workload_id })}</h1>
      <dl className="facts">
        <dt>ID</dt><dd>{d.workload_id} · <Link to={`/runs/${encodeURIComponent(d.workload_id)}`}>{t("runs.viewRun")}</Link></dd>
        <dt>{t("trainer.status")}</dt><dd data-testid="detail-status"><StatusBadge status={d.status} label={d.status_label} /></dd>
        <dt>{t("trainer.app")}</dt><dd>{d.app_id} v{d.spec_version}</dd>
        <dt>{t("trainer.requester")}</dt><dd>{d.requester}</dd>
        <dt>{t("trainer.priority")}</dt><dd><PriorityBadge priority={d.priority} /></dd>
        <dt>{t("trainer.resources")}</dt><dd><ResourceText resources={d.resources} /></dd>
        <dt>{t("trainer.submitted")}</dt><dd><When at={d.submitted_at} /></dd>
        {d.loop_test && (<><dt>{t("trainer.loopTest")}</dt><dd><StatusBadge status={d.loop_test.status} /></dd></>)}
        {d.outcome && (<><dt>{t("trainer.outcome")}</dt><dd>{d.outcome}</dd></>)}
        {modelId && (<><dt>{t("trainer.model")}</dt><dd><Link to={`/models/${encodeURIComponent(modelId)}`}>{modelId}</Link></dd></>)}
      </dl>
      {CANCELLABLE.has(d.status) && (
        <GuardedButton verdict={mayCancel(me, d.requester)} busy={cancel.isPending} onClick={() => cancel.mutate()}>
          {t("common.cancel")}
        </GuardedButton>
      )}
      <ErrorBox error={cancel.error} />
      <h2>{t("trainer.trainingConfig")}</h2>
      <JsonBlock value={d.training_config} label={t("trainer.trainingConfig")} />
      {Object.keys(d.final_metrics).length > 0 && (
        <>
          <h2>{t("trainer.finalMetrics")}</h2>
          <JsonBlock value={d.final_metrics} label={t("trainer.finalMetrics")} />
        </>
      )}
      <h2 id="timeline-title">{t("trainer.timeline")}</h2>
      <ol className="timeline" aria-labelledby="timeline-title" data-testid="timeline">
        {ordered(d.timeline).map((item) => (
          <li key={item.event_id} data-type={item.type}>
            <When at={item.at} /> <code>{item.type}</code> <span className="muted">{item.producer}</span>
            <div>{item.summary}</div>
          </li>
        ))}
      </ol>
    </section>
  );
}
