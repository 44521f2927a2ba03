// RS-06: the usage-over-time chart. The samples arrive with no live event, so this one query is read
// again on an interval (the sampling's); every other figure on the screen follows the SSE stream.
import { lazy, Suspense, useId, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { getHistory, historyKey } from "../../api/resources";
import { ErrorBox, Loading } from "../../components/common";
import { RANGES, sampled, trendLines, type RangeHours, type TrendKind } from "./trend";

const UsageChart = lazy(() => import("../../charts/UsageChart"));
const KINDS: TrendKind[] = ["gpu", "memory", "cpu"];
export const MIN_REFRESH_S = 15;

export default function UsageTrend() {
  const { t, i18n } = useTranslation();
  const id = useId();
  const [hours, setHours] = useState<RangeHours>(1);
  const [kind, setKind] = useState<TrendKind>("gpu");
  const history = useQuery({
    queryKey: historyKey(hours),
    queryFn: () => getHistory(hours),
    placeholderData: (previous) => previous,
    refetchInterval: (query) => Math.max(MIN_REFRESH_S, query.state.data?.sample_s ?? 30) * 1000,
  });
  const refresh = Math.max(MIN_REFRESH_S, history.data?.sample_s ?? 30);

  return (
    <>
      <div className="filters">
        <span>
          <label htmlFor={`${id}-range`}>{t("cluster.range")}</label>{" "}
          <select id={`${id}-range`} value={hours} onChange={(e) => setHours(Number(e.target.value) as RangeHours)}>
            {RANGES.map((h) => <option key={h} value={h}>{t(`cluster.ranges.h${h}`)}</option>)}
          </select>
        </span>
        <span>
          <label htmlFor={`${id}-kind`}>{t("cluster.kind")}</label>{" "}
          <select id={`${id}-kind`} value={kind} onChange={(e) => setKind(e.target.value as TrendKind)}>
            {KINDS.map((k) => <option key={k} value={k}>{t(`cluster.kinds.${k}`)}</option>)}
          </select>
        </span>
      </div>
      {history.isPending ? (
        <Loading />
      ) : history.isError ? (
        <ErrorBox error={history.error} />
      ) : (
        <>
          {!sampled(history.data) && <p className="muted">{t("cluster.noSamples")}</p>}
          <Suspense fallback={<Loading />}>
            <UsageChart
              times={history.data.times}
              lines={trendLines(history.data, kind, t)}
              title={`${t("cluster.chart")} · ${t(`cluster.kinds.${kind}`)} · ${t(`cluster.ranges.h${hours}`)}`}
              unit={t(`cluster.units.${kind}`)}
              timeLabel={t("cluster.time")}
              locale={i18n.language === "ko" ? "ko-KR" : "en-GB"}
            />
          </Suspense>
          <p className="muted">
            {t("cluster.sampling", { seconds: String(history.data.sample_s), days: String(history.data.retention_days), refresh: String(refresh) })}
          </p>
        </>
      )}
    </>
  );
}
