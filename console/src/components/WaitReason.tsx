// Why a waiting workload waits and when it may start (the scheduler's wait.py): the label is built from the
// machine code and its figures in the console's language; an unknown code shows the server's Korean text.
import { useTranslation } from "react-i18next";
import type { WaitReason as Reason } from "../api/runs";
import { When } from "./common";

const gigabytes = (bytes: number | undefined) => `${Math.round((bytes ?? 0) / 1e9)}GB`;

export function waitText(t: (key: string, values?: Record<string, unknown>) => string, reason: Reason): string {
  const needs = reason.gpu_type === undefined || reason.gpu_type === "any" || reason.gpu_type === null
    ? t("runs.wait.needsAny", { count: reason.gpu_count ?? 0 })
    : t("runs.wait.needsGpus", { type: reason.gpu_type, count: reason.gpu_count ?? 0 });
  switch (reason.code) {
    case "starting":
      return t("runs.wait.starting");
    case "behind":
      return t("runs.wait.behind", { ahead: reason.ahead ?? 0 });
    case "gpus":
      return t("runs.wait.gpus", { needs, free: reason.gpus_free ?? 0 });
    case "memory":
      return t("runs.wait.memory", { memory: gigabytes(reason.memory_bytes), free: gigabytes(reason.memory_free_bytes) });
    case "cpu":
      return t("runs.wait.cpu", { cpu: reason.cpu ?? 0, free: reason.cpu_free ?? 0 });
    case "unschedulable":
      return t("runs.wait.unschedulable", { needs });
    case "nodes_unavailable":
      return t("runs.wait.nodes_unavailable", { needs, nodes: (reason.nodes ?? []).join(", ") });
    default:
      return reason.text; // a code newer than this console: the server's own words
  }
}

export function WaitReasonText({ reason }: { reason: Reason | null | undefined }) {
  const { t } = useTranslation();
  if (!reason) return <span className="muted">—</span>;
  return (
    <span className={`wait wait-${reason.code}`} data-code={reason.code} title={reason.text}>
      {waitText(t, reason)}
    </span>
  );
}

export function EstimatedStart({ at }: { at: string | null | undefined }) {
  const { t } = useTranslation();
  if (!at) return <span className="muted">{t("runs.wait.unknown")}</span>;
  if (Date.parse(at) <= Date.now() + 1000) return <span>{t("runs.wait.now")}</span>;
  return <When at={at} />;
}
