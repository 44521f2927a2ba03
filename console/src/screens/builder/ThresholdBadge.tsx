// BL-06: the per-component approval badge, live as the resources are edited.
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { builderApi, type ComponentResources, type Thresholds } from "../../api/builder";
import { thresholdReasons } from "./thresholds";

export const THRESHOLDS_KEY = ["approval", "thresholds"] as const;

export function useThresholds() {
  return useQuery({ queryKey: THRESHOLDS_KEY, queryFn: builderApi.thresholds, staleTime: 60_000 });
}

export function ThresholdBadge({
  resources,
  thresholds,
  compact = false,
}: {
  resources: Partial<ComponentResources>;
  thresholds: Thresholds | undefined;
  compact?: boolean;
}) {
  const { t } = useTranslation();
  if (!thresholds) return null;
  const reasons = thresholdReasons(resources, thresholds);
  const texts = reasons.map((r) =>
    r.kind === "gpu"
      ? t("builder.threshold.gpu", { count: r.count, limit: r.limit })
      : t("builder.threshold.memory", { memory: r.memory, limit: r.limit }),
  );
  const over = reasons.length > 0;
  const limit = t("builder.threshold.limit", { gpu: thresholds.gpu_count, memory: thresholds.memory });
  return (
    <span
      className={`badge threshold ${over ? "threshold-over" : "threshold-ok"}`}
      data-testid="threshold-badge"
      data-over={over}
      title={over ? `${texts.join(", ")} (${limit})` : limit}
      aria-live={compact ? undefined : "polite"}
    >
      {over ? t("builder.threshold.over") : t("builder.threshold.ok")}
      {!compact && over && <span className="threshold-why">: {texts.join(", ")}</span>}
    </span>
  );
}
