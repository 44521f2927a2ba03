// MD-03 (first part): a model's figures, files and metrics, with its download.
import { Link, useParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get } from "../api/client";
import type { ModelDetail as Detail } from "../api/types";
import { ErrorBox, formatBytes, Loading, StatusBadge, When } from "../components/common";
import { downloadUrl } from "./Models";

export default function ModelDetail() {
  const { t } = useTranslation();
  const { id = "" } = useParams();
  const model = useQuery({
    queryKey: ["models", "model", id],
    queryFn: () => get<Detail>(`/api/models/models/${encodeURIComponent(id)}`),
  });
  if (model.isPending) return <Loading />;
  if (model.isError) return <ErrorBox error={model.error} />;
  const m = model.data;
  return (
    <section aria-labelledby="model-title">
      <p><Link to="/models">← {t("common.back")}</Link></p>
      <h1 id="model-title">{t("models.detail", { name: m.name })}</h1>
      <dl className="facts">
        <dt>ID</dt><dd>{m.model_id}</dd>
        <dt>{t("models.app")}</dt><dd>{m.app_name} ({m.app_id}) v{m.spec_version}</dd>
        <dt>{t("models.version")}</dt><dd>{m.version}</dd>
        <dt>{t("models.workload")}</dt><dd><Link to={`/trainer/${encodeURIComponent(m.workload_id)}`}>{m.workload_name || m.workload_id}</Link></dd>
        <dt>{t("models.created")}</dt><dd><When at={m.created_at} /></dd>
        <dt>{t("models.size")}</dt><dd>{formatBytes(m.size_bytes)}</dd>
        <dt>{t("models.status")}</dt><dd><StatusBadge status={m.status} /></dd>
      </dl>
      {m.status === "stored" && (
        <p><a className="button" href={downloadUrl(m.model_id)} download>{t("common.download")}</a></p>
      )}
      {/* the service's links are relative to it; through the gateway they live under /api/models */}
      <h2>{t("models.files")}</h2>
      <table>
        <thead>
          <tr><th scope="col">path</th><th scope="col">{t("models.size")}</th><th scope="col">sha256</th></tr>
        </thead>
        <tbody>
          {m.files.map((f) => (
            <tr key={f.path}>
              <td><a href={`/api/models${f.download}`} download>{f.path}</a></td>
              <td>{formatBytes(f.size_bytes)}</td>
              <td><code>{f.sha256.slice(0, 16)}…</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>{t("models.metrics")}</h2>
      <pre className="json">{JSON.stringify(m.metrics, null, 2)}</pre>
      <h2>{t("trainer.trainingConfig")}</h2>
      <pre className="json">{JSON.stringify(m.training_config, null, 2)}</pre>
    </section>
  );
}
