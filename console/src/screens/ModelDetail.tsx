// MD-03: a model with its source spec, training config, run logs and metadata, its download; MD-05 the
// App's versions and aliases (promote / roll back, with their history); MD-06 the way to compare.
import { Link, useParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get } from "../api/client";
import { fetchAliases, modelKeys } from "../api/models";
import type { ModelDetail as Detail } from "../api/types";
import { ErrorBox, formatBytes, JsonBlock, Loading, StatusBadge, When } from "../components/common";
import { downloadUrl } from "./Models";
import Aliases from "./models/Aliases";
import Versions from "./models/Versions";

/** the service's links are relative to it; through the gateway they live under /api/models */
const viaGateway = (path: string) => `/api/models${path}`;

export default function ModelDetail() {
  const { t } = useTranslation();
  const { id = "" } = useParams();
  const model = useQuery({
    queryKey: ["models", "model", id],
    queryFn: () => get<Detail>(`/api/models/models/${encodeURIComponent(id)}`),
  });
  const appId = model.data?.app_id ?? "";
  // shared with <Aliases> (same key): which aliases sit on each version
  const aliases = useQuery({ queryKey: modelKeys.aliases(appId), queryFn: () => fetchAliases(appId), enabled: !!appId });
  if (model.isPending) return <Loading />;
  if (model.isError) return <ErrorBox error={model.error} />;
  const m = model.data;
  const aliasesOf = (modelId: string) => (aliases.data?.aliases ?? []).filter((a) => a.model_id === modelId).map((a) => a.alias);
  return (
    <section aria-labelledby="model-title">
      <p><Link to="/models">← {t("common.back")}</Link></p>
      <h1 id="model-title">{t("models.detail", { name: m.name })}</h1>
      <dl className="facts">
        <dt>ID</dt><dd>{m.model_id}</dd>
        <dt>{t("models.app")}</dt><dd>{m.app_name} ({m.app_id}) v{m.spec_version}</dd>
        <dt>{t("models.version")}</dt><dd>{m.version} {aliasesOf(m.model_id).map((a) => <span key={a} className="badge">{a}</span>)}</dd>
        <dt>{t("models.workload")}</dt>
        <dd>
          <Link to={`/trainer/${encodeURIComponent(m.workload_id)}`}>{m.workload_name || m.workload_id}</Link>
          {" · "}
          <Link to={`/runs/${encodeURIComponent(m.workload_id)}`}>{t("models.run")}</Link>
        </dd>
        <dt>{t("models.requester")}</dt><dd>{String(m.workload.requester ?? "—")}</dd>
        <dt>{t("models.created")}</dt><dd><When at={m.created_at} /></dd>
        <dt>{t("models.size")}</dt><dd>{formatBytes(m.size_bytes)}</dd>
        <dt>{t("models.status")}</dt><dd><StatusBadge status={m.status} />{m.store_error && <span className="muted"> {m.store_error}</span>}</dd>
      </dl>
      {m.status === "stored" && (
        <p><a className="button" href={downloadUrl(m.model_id)} download>{t("common.download")}</a></p>
      )}
      <Aliases model={m} />
      <Versions model={m} aliasesOf={aliasesOf} />
      <h2>{t("models.files")}</h2>
      <table>
        <caption className="sr-only">{t("models.files")}</caption>
        <thead>
          <tr><th scope="col">{t("models.path")}</th><th scope="col">{t("models.size")}</th><th scope="col">sha256</th></tr>
        </thead>
        <tbody>
          {m.files.map((f) => (
            <tr key={f.path}>
              <td><a href={viaGateway(f.download)} download>{f.path}</a></td>
              <td>{formatBytes(f.size_bytes)}</td>
              <td><code>{f.sha256.slice(0, 16)}…</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>{t("models.runLogs")}</h2>
      <ul data-testid="run-logs">
        {m.run_logs.length === 0 && <li className="muted">{t("common.empty")}</li>}
        {m.run_logs.map((log) => (
          <li key={`${log.task_id}/${log.component}`}>
            {log.component} <span className="muted">({log.task_id} · {log.component_id})</span>{" "}
            {log.download ? (
              <a href={viaGateway(log.download)} target="_blank" rel="noreferrer">{t("models.openLog")}</a>
            ) : (
              <span className="muted">{t("models.noLog")}</span>
            )}
          </li>
        ))}
      </ul>
      <h2>{t("models.metrics")}</h2>
      <JsonBlock value={m.metrics} label={t("models.metrics")} />
      <h2>{t("trainer.trainingConfig")}</h2>
      <JsonBlock value={m.training_config} label={t("trainer.trainingConfig")} />
      <h2>{t("models.spec")}</h2>
      <details>
        <summary>{t("models.show")}</summary>
        <JsonBlock value={m.spec} label={t("models.spec")} testId="model-spec" />
      </details>
      <h2>{t("models.metadata")}</h2>
      <details>
        <summary>{t("models.show")}</summary>
        <JsonBlock value={m.workload} label={t("models.metadata")} />
      </details>
    </section>
  );
}
