// 워크플로우 시각화 (BL-08, BL-04): the builder's own SVG of each Task (redrawn whenever the App's revision
// moves), and the App spec file: generate it, read and download its JSON, every version it had.
import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { builderApi } from "../../api/builder";
import { useMe } from "../../auth/session";
import { ErrorBox, GuardedButton, Loading, When } from "../../components/common";
import { APPS_KEY } from "./AppList";
import { mayEditApp } from "./rules";
import { BuilderTabs } from "./Tabs";
import { appKey, useApp } from "./useApp";

export default function Workflow() {
  const { appId = "" } = useParams();
  const { t } = useTranslation();
  const me = useMe();
  const client = useQueryClient();
  const { query, app } = useApp(appId);
  // ?version= opens one spec version (the approval screen links to the one a request was made from)
  const [params] = useSearchParams();
  const [version, setVersion] = useState<string | null>(params.get("version"));
  const specs = useQuery({ queryKey: ["builder", "specs", appId], queryFn: () => builderApi.listSpecs(appId) });
  const shownVersion = version ?? specs.data?.items[0]?.version ?? null;
  const spec = useQuery({
    queryKey: ["builder", "spec", appId, shownVersion],
    queryFn: () => builderApi.getSpec(appId, shownVersion ?? undefined),
    enabled: shownVersion !== null,
  });
  const generate = useMutation({
    mutationFn: () => builderApi.generateSpec(appId),
    onSuccess: (answer) => {
      setVersion(String(answer.version));
      client.setQueryData(["builder", "spec", appId, String(answer.version)], answer);
      void client.invalidateQueries({ queryKey: ["builder", "specs", appId] });
      void client.invalidateQueries({ queryKey: appKey(appId) });
      void client.invalidateQueries({ queryKey: APPS_KEY });
    },
  });
  if (query.isPending) return <Loading />;
  if (query.isError || !app) return <ErrorBox error={query.error} />;
  const verdict = mayEditApp(me.data, app);
  const json = spec.data ? JSON.stringify(spec.data, null, 2) : "";

  return (
    <section aria-labelledby="workflow-title">
      <p><Link to="/builder">{t("builder.back")}</Link></p>
      <h1 id="workflow-title">
        {app.name} <span className="muted small">{app.app_id}</span>
      </h1>
      <BuilderTabs app={app} />
      <section aria-labelledby="diagrams-title">
        <h2 id="diagrams-title">{t("builder.workflow.diagrams")}</h2>
        {app.tasks.length === 0 && <p className="muted">{t("builder.tasks.none")}</p>}
        {app.tasks.map((task) => (
          <figure key={task.task_id} className="diagram" data-task={task.task_id}>
            <figcaption>
              <strong>{task.task_id} · {task.name}</strong>
              {task.imported_from && <span className="badge imported">{t("builder.tasks.importedFrom", { app: app.imported_apps.find((i) => i.app_ref === task.imported_from)?.name ?? task.imported_from, ref: task.imported_from })}</span>}{" "}
              <Link to={`/builder/${encodeURIComponent(app.app_id)}/tasks/${encodeURIComponent(task.task_id)}`}>{t("builder.tasks.edit")}</Link>
            </figcaption>
            <img
              src={builderApi.diagramUrl(app.app_id, task.task_id, app.revision)}
              alt={t("builder.workflow.alt", {
                name: task.name,
                order: task.order.map((id) => task.components.find((c) => c.component_id === id)?.name ?? id).join(" → ") || "—",
              })}
              data-testid="workflow-svg"
            />
          </figure>
        ))}
      </section>

      <section aria-labelledby="spec-title">
        <h2 id="spec-title">{t("builder.spec.title")}</h2>
        <p className="muted">
          {app.latest_spec_version
            ? t(app.has_unpublished_changes ? "builder.spec.changed" : "builder.spec.current", { version: app.latest_spec_version })
            : t("builder.spec.never")}
        </p>
        <GuardedButton verdict={verdict} busy={generate.isPending} onClick={() => generate.mutate()}>
          {t("builder.spec.generate")}
        </GuardedButton>
        <ErrorBox error={generate.error} />
        {specs.isPending ? (
          <Loading />
        ) : specs.isError ? (
          <ErrorBox error={specs.error} />
        ) : (
          <table data-testid="spec-versions">
            <caption>{t("builder.spec.history")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("builder.spec.version")}</th>
                <th scope="col">{t("builder.spec.created")}</th>
                <th scope="col">{t("builder.spec.by")}</th>
                <th scope="col">{t("builder.apps.tasks")}</th>
                <th scope="col">{t("builder.apps.components")}</th>
                <th scope="col">{t("builder.apps.largest")}</th>
                <th scope="col">{t("builder.spec.approval")}</th>
                <th scope="col">{t("builder.tasks.actions")}</th>
              </tr>
            </thead>
            <tbody>
              {specs.data.items.length === 0 && <tr><td colSpan={8} className="muted">{t("builder.spec.never")}</td></tr>}
              {specs.data.items.map((s) => (
                <tr key={s.version} data-version={s.version} aria-current={s.version === shownVersion ? "true" : undefined}>
                  <td>{s.version}</td>
                  <td><When at={s.created_at} /></td>
                  <td>{s.created_by}</td>
                  <td>{s.task_count}</td>
                  <td>{s.component_count}</td>
                  <td>
                    {s.largest_component
                      ? `${s.largest_component.name}: ${s.largest_component.resources.gpu_type} × ${s.largest_component.resources.gpu_count} · ${s.largest_component.resources.memory}`
                      : "—"}
                  </td>
                  <td>{s.needs_approval ? t("builder.threshold.over") : t("builder.threshold.ok")}</td>
                  <td className="actions">
                    <button type="button" onClick={() => setVersion(s.version)} aria-label={t("builder.spec.viewOne", { version: s.version })}>
                      {t("common.view")}
                    </button>{" "}
                    <a href={builderApi.specUrl(app.app_id, s.version)} download={`${app.app_id}-${s.version}.json`} aria-label={t("builder.spec.downloadOne", { version: s.version })}>
                      {t("common.download")}
                    </a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {spec.isError && <ErrorBox error={spec.error} />}
        {json && (
          <>
            <h3>{t("builder.spec.json", { version: shownVersion })}</h3>
            <pre className="json" tabIndex={0} aria-label={t("builder.spec.json", { version: shownVersion })} data-testid="spec-json">
              {json}
            </pre>
          </>
        )}
      </section>
    </section>
  );
}
