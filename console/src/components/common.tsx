import type { ReactNode } from "react";
import { useId } from "react";
import { useTranslation } from "react-i18next";
import type { Resources } from "../api/types";
import type { Verdict } from "../rules/permissions";
import { ApiError } from "../api/client";

export function StatusBadge({ status, label }: { status: string; label?: string }) {
  const { t } = useTranslation();
  const text = label ?? t(`status.${status}`, { defaultValue: status });
  return (
    <span className={`badge badge-${status.replace(/[^a-z]+/g, "-")}`} data-status={status}>
      {text}
    </span>
  );
}

export function PriorityBadge({ priority }: { priority: string }) {
  const { t } = useTranslation();
  return <span className={`badge priority-${priority}`}>{t(`priority.${priority}`, { defaultValue: priority })}</span>;
}

/** "GPU A100 × 4 · 메모리 128GB · CPU 8 · 최대 2h" from either wire (camelCase) or API (snake_case) resources */
export function ResourceText({ resources }: { resources: Resources | Record<string, unknown> | null | undefined }) {
  const { t } = useTranslation();
  if (!resources) return <span>—</span>;
  const r = resources as Resources;
  const parts: string[] = [];
  const type = r.gpuType ?? r.gpu_type;
  const count = r.gpuCount ?? r.gpu_count;
  if (type !== undefined || count !== undefined) parts.push(t("resources.gpu", { type: type ?? "", count: count ?? 0 }));
  if (r.memory) parts.push(t("resources.memory", { memory: r.memory }));
  if (r.cpu) parts.push(t("resources.cpu", { cpu: r.cpu }));
  const runtime = r.maxRuntime ?? r.max_runtime;
  if (runtime) parts.push(t("resources.runtime", { runtime }));
  return <span>{parts.join(" · ") || "—"}</span>;
}

export function When({ at }: { at: string | null | undefined }) {
  const { i18n } = useTranslation();
  if (!at) return <span>—</span>;
  const date = new Date(at);
  return <time dateTime={at}>{date.toLocaleString(i18n.language === "ko" ? "ko-KR" : "en-GB")}</time>;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function ErrorBox({ error }: { error: unknown }) {
  const { t } = useTranslation();
  if (!error) return null;
  const message = error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" className="error">
      <strong>{t("common.error")}</strong>
      {error instanceof ApiError ? ` (${error.status})` : ""}: {message}
    </div>
  );
}

export function Loading() {
  const { t } = useTranslation();
  return (
    <p role="status" aria-live="polite" className="muted">
      {t("common.loading")}
    </p>
  );
}

/** A button that, when a rule says no, stays visible but disabled with the reason next to it (and announced). */
export function GuardedButton({
  verdict,
  onClick,
  children,
  busy,
  className,
  label,
  type = "button",
}: {
  verdict: Verdict;
  onClick?: () => void;
  type?: "button" | "submit";
  children: ReactNode;
  busy?: boolean;
  className?: string;
  label?: string;
}) {
  const { t } = useTranslation();
  const id = useId();
  const reason = verdict ? t(verdict.reason, verdict.values) : null;
  return (
    <span className="guarded">
      <button
        type={type}
        className={className}
        disabled={!!verdict || busy}
        aria-disabled={!!verdict || busy}
        aria-describedby={reason ? id : undefined}
        aria-label={label}
        title={reason ?? undefined}
        onClick={onClick}
      >
        {children}
      </button>
      {reason && (
        <span id={id} className="reason" data-testid="reason">
          {reason}
        </span>
      )}
    </span>
  );
}

export function Pager({ page, pageSize, total, onPage }: { page: number; pageSize: number; total: number; onPage: (p: number) => void }) {
  const { t } = useTranslation();
  const pages = Math.max(1, Math.ceil(total / pageSize));
  if (pages <= 1) return <p className="muted">{t("common.total", { count: total })}</p>;
  return (
    <nav className="pager" aria-label="pagination">
      <button type="button" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        {t("common.prev")}
      </button>
      <span>{t("common.page", { page, pages })}</span>
      <button type="button" disabled={page >= pages} onClick={() => onPage(page + 1)}>
        {t("common.next")}
      </button>
      <span className="muted">{t("common.total", { count: total })}</span>
    </nav>
  );
}

/** A JSON value, pretty-printed; it scrolls, so it takes the keyboard focus (and says what it is). */
export function JsonBlock({ value, label, testId }: { value: unknown; label: string; testId?: string }) {
  return (
    <pre className="json" tabIndex={0} aria-label={label} data-testid={testId}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}
