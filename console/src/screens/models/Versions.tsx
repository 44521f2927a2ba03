// MD-05: every model version of the model's App, newest first, with the aliases on each; pick two or
// more to compare their metrics (MD-06).
import { useState } from "react";
import { Link } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { fetchVersions, modelKeys } from "../../api/models";
import type { ModelDetail } from "../../api/types";
import { ErrorBox, formatBytes, Loading, StatusBadge, When } from "../../components/common";

export const MAX_COMPARED = 10; // the models service compares 2 to 10

export default function Versions({ model, aliasesOf }: { model: ModelDetail; aliasesOf: (modelId: string) => string[] }) {
  const { t } = useTranslation();
  const versions = useQuery({ queryKey: modelKeys.versions(model.app_id), queryFn: () => fetchVersions(model.app_id) });
  const [picked, setPicked] = useState<string[]>([model.model_id]);
  if (versions.isPending) return <Loading />;
  if (versions.isError) return <ErrorBox error={versions.error} />;
  const toggle = (id: string) =>
    setPicked((now) => (now.includes(id) ? now.filter((p) => p !== id) : now.length < MAX_COMPARED ? [...now, id] : now));
  return (
    <section aria-labelledby="versions-title">
      <h2 id="versions-title">{t("models.versions", { app: model.app_name })}</h2>
      <table data-testid="versions">
        <caption className="sr-only">{t("models.versionsCaption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("models.compareColumn")}</th>
            <th scope="col">{t("models.version")}</th>
            <th scope="col">{t("models.workload")}</th>
            <th scope="col">{t("models.created")}</th>
            <th scope="col">{t("models.size")}</th>
            <th scope="col">{t("models.status")}</th>
            <th scope="col">{t("models.aliases")}</th>
          </tr>
        </thead>
        <tbody>
          {versions.data.versions.map((v) => (
            <tr key={v.model_id} data-model={v.model_id} aria-current={v.model_id === model.model_id ? "true" : undefined}>
              <td>
                <input
                  type="checkbox"
                  aria-label={t("models.pick", { version: v.version })}
                  checked={picked.includes(v.model_id)}
                  onChange={() => toggle(v.model_id)}
                />
              </td>
              <td><Link to={`/models/${encodeURIComponent(v.model_id)}`}>v{v.version}</Link></td>
              <td>{v.workload_name || v.workload_id}</td>
              <td><When at={v.created_at} /></td>
              <td>{formatBytes(v.size_bytes)}</td>
              <td><StatusBadge status={v.status} /></td>
              <td>{aliasesOf(v.model_id).map((a) => <span key={a} className="badge">{a}</span>)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {picked.length >= 2 ? (
        <p><Link className="button" to={`/models/compare?ids=${picked.map(encodeURIComponent).join(",")}`}>{t("models.compare", { count: picked.length })}</Link></p>
      ) : (
        <p className="muted">{t("models.pickTwo")}</p>
      )}
    </section>
  );
}
