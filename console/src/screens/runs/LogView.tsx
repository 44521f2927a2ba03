// SC-05: one component's log, tailed live while it runs (the scheduler streams it with follow=true until the
// component ends) and read whole after (the model's copy when the models service keeps it). The stream ending
// is the sign the component ended: `onEnded` lets the page refetch the DAG's states.
import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { LIVE, logUrl, readLog, type ComponentRun } from "../../api/runs";
import { ErrorBox } from "../../components/common";

const MAX_CHARS = 400_000; // the tail kept on screen; the whole log stays downloadable

export default function LogView({
  workloadId,
  run,
  modelLog,
  onEnded,
}: {
  workloadId: string;
  run: ComponentRun;
  modelLog: string | null;
  onEnded: () => void;
}) {
  const { t } = useTranslation();
  const [text, setText] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState(false);
  const box = useRef<HTMLPreElement | null>(null);
  const live = LIVE.has(run.status);
  const started = run.status !== "pending" && run.status !== "skipped";
  const url = logUrl(workloadId, run, live, modelLog);
  const ended = useRef(onEnded);
  ended.current = onEnded;

  useEffect(() => {
    if (!started) return;
    const abort = new AbortController();
    setText("");
    setError(null);
    setStreaming(true);
    readLog(url, (chunk) => setText((was) => (was + chunk).slice(-MAX_CHARS)), abort.signal)
      .then(() => {
        if (!abort.signal.aborted && live) ended.current();
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(e);
      })
      .finally(() => {
        if (!abort.signal.aborted) setStreaming(false);
      });
    return () => abort.abort();
    // a new attempt or a status change (running -> ended) reads the log again, from where it is kept now
  }, [url, started, live, run.attempt]);

  useEffect(() => {
    const el = box.current;
    if (el && live) el.scrollTop = el.scrollHeight;
  }, [text, live]);

  const label = t("runs.logOf", { name: run.name });
  return (
    <div className="logview">
      <p className="muted" data-testid="log-source">
        {live ? `● ${t("runs.following")}` : modelLog ? t("runs.fromModel") : t("runs.ended")}
        {" · "}
        {started && <a href={url.replace("&follow=true", "")} target="_blank" rel="noreferrer">{t("common.download")}</a>}
      </p>
      <ErrorBox error={error} />
      {!started ? (
        <p className="muted">{t("runs.noLogYet")}</p>
      ) : (
        <pre ref={box} className="log" tabIndex={0} aria-label={label} aria-busy={streaming} data-testid="log">
          {text || (streaming ? "" : t("runs.emptyLog"))}
        </pre>
      )}
    </div>
  );
}
