// AP-02…AP-05: one request: requested resources, requester and why it needs an admin; run the loop test
// and watch it live; its results (reward per episode, convergence, final figures; or the run log, success
// rate and mean duration); approve only once it passed ("테스트 필요"); reject with a comment.
import { lazy, Suspense, useState } from "react";
import { Link, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get, post } from "../api/client";
import type { ApprovalDetail as Detail } from "../api/types";
import { useMe } from "../auth/session";
import { ErrorBox, GuardedButton, Loading, PriorityBadge, ResourceText, StatusBadge, When } from "../components/common";
import { mayApprove, mayDecide, mayReject, mayRunLoopTest } from "../rules/permissions";

const RewardChart = lazy(() => import("../charts/RewardChart"));

export default function ApprovalDetail() {
  const { t } = useTranslation();
  const { id = "" } = useParams();
  const me = useMe().data;
  const client = useQueryClient();
  const [comment, setComment] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const path = `/api/approval/approvals/${encodeURIComponent(id)}`;
  const detail = useQuery({ queryKey: ["approval", "approval", id], queryFn: () => get<Detail>(path) });
  const changed = (message: string) => (answer: Detail) => {
    client.setQueryData(["approval", "approval", id], answer);
    void client.invalidateQueries({ queryKey: ["approval"] });
    void client.invalidateQueries({ queryKey: ["trainer"] });
    setNotice(message);
  };
  const loopTest = useMutation({ mutationFn: () => post<Detail>(`${path}/loop-test`, {}), onSuccess: changed(t("approvals.testStarted")) });
  const approve = useMutation({ mutationFn: () => post<Detail>(`${path}/approve`), onSuccess: changed(t("approvals.approved")) });
  const reject = useMutation({ mutationFn: () => post<Detail>(`${path}/reject`, { comment }), onSuccess: changed(t("approvals.rejected")) });

  if (detail.isPending) return <Loading />;
  if (detail.isError) return <ErrorBox error={detail.error} />;
  const d = detail.data;
  const results = d.loop_test?.results ?? null;
  const approveVerdict = mayApprove(me, d);
  const decider = mayDecide(me, d);
  const busy = loopTest.isPending || approve.isPending || reject.isPending;

  return (
    <section aria-labelledby="approval-title">
      <p><Link to="/approvals">← {t("common.back")}</Link></p>
      <h1 id="approval-title">{t("approvals.detail", { id: d.name || d.workload_id })}</h1>
      <dl className="facts">
        <dt>ID</dt><dd>{d.workload_id}</dd>
        <dt>{t("approvals.status")}</dt>
        <dd data-testid="approval-status"><StatusBadge status={d.status} label={d.status_label} /></dd>
        <dt>{t("approvals.app")}</dt>
        <dd>
          {d.app_id} v{d.spec_version} ·{" "}
          <Link to={`/builder/${encodeURIComponent(d.app_id)}/workflow?version=${encodeURIComponent(d.spec_version)}`}>
            {t("approvals.specLink")}
          </Link>
        </dd>
        <dt>{t("approvals.requester")}</dt><dd>{d.requester}</dd>
        <dt>{t("queue.priority")}</dt><dd><PriorityBadge priority={d.priority} /></dd>
        <dt>{t("approvals.resources")}</dt><dd data-testid="approval-resources"><ResourceText resources={d.resources} /></dd>
        <dt>{t("approvals.submitted")}</dt><dd><When at={d.submitted_at} /></dd>
        {d.decided_by && (<><dt>{t("approvals.decidedBy")}</dt><dd>{d.decided_by} (<When at={d.decided_at} />)</dd></>)}
        {d.comment && (<><dt>{t("approvals.comment")}</dt><dd>{d.comment}</dd></>)}
      </dl>

      <h2>{t("approvals.why")}</h2>
      {d.needs_approval ? (
        <ul data-testid="reasons">{d.reasons.map((reason) => <li key={reason}>{reason}</li>)}</ul>
      ) : (
        <p>{t("approvals.auto")}</p>
      )}

      {d.needs_approval && (
        <>
          <h2>{t("approvals.loopTest")}</h2>
          <p data-testid="loop-test-status">
            <StatusBadge status={d.loop_test?.status ?? "pending"} />
            {d.loop_test?.executedBy && <> · {t("approvals.executedBy")}: {d.loop_test.executedBy} ({d.loop_test.executedAt})</>}
          </p>
          <div className="buttons">
            <GuardedButton verdict={mayRunLoopTest(me, d)} busy={busy} onClick={() => loopTest.mutate()}>
              {t("approvals.runTest")}
            </GuardedButton>
          </div>
        </>
      )}

      {results && (
        <section aria-labelledby="results-title" data-testid="results">
          <h3 id="results-title">{t("approvals.results")}</h3>
          {results.reason && <p className="warning">{results.reason}</p>}
          <dl className="facts">
            {results.convergence !== undefined && (<><dt>{t("approvals.convergence")}</dt><dd>{results.convergence ? t("common.yes") : t("common.no")}</dd></>)}
            {results.avgReward != null && (<><dt>{t("approvals.avgReward")}</dt><dd>{results.avgReward}</dd></>)}
            {results.finalReward != null && (<><dt>{t("approvals.finalReward")}</dt><dd>{results.finalReward}</dd></>)}
            {results.successRate && (<><dt>{t("approvals.successRate")}</dt><dd>{results.successRate}</dd></>)}
            {results.avgDuration && (<><dt>{t("approvals.avgDuration")}</dt><dd>{results.avgDuration}</dd></>)}
          </dl>
          {results.rewards && results.rewards.length > 0 && (
            <Suspense fallback={<Loading />}>
              <RewardChart
                rewards={results.rewards}
                average={results.avgReward}
                title={t("approvals.rewardChart")}
                episodeLabel={t("approvals.episode")}
                rewardLabel={t("approvals.reward")}
              />
            </Suspense>
          )}
          {results.log && (
            <details>
              <summary>{t("approvals.log")}</summary>
              <pre className="log" tabIndex={0} aria-label={t("approvals.log")}>{results.log}</pre>
            </details>
          )}
        </section>
      )}

      {d.needs_approval && (
        <section aria-label={t("approvals.approve")} className="decision">
          <div className="buttons">
            <GuardedButton verdict={approveVerdict} busy={busy} className="primary" onClick={() => approve.mutate()}>
              {t("approvals.approve")}
            </GuardedButton>
          </div>
          {approveVerdict?.reason === "why.testRequired" && (
            <p className="warning" role="note" data-testid="test-required">{d.warning ?? "테스트 필요"}</p>
          )}
          <label>
            {t("approvals.comment")}
            <textarea
              value={comment}
              disabled={!!decider}
              onChange={(e) => setComment(e.target.value)}
              aria-describedby="comment-hint"
              rows={3}
            />
          </label>
          <p id="comment-hint" className="muted">{t("approvals.commentHint")}</p>
          <GuardedButton verdict={mayReject(me, d, comment)} busy={busy} onClick={() => reject.mutate()}>
            {t("approvals.reject")}
          </GuardedButton>
        </section>
      )}
      <ErrorBox error={loopTest.error ?? approve.error ?? reject.error} />
      {notice && <p role="status" className="notice">{notice}</p>}
    </section>
  );
}
