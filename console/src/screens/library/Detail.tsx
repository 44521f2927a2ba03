// CL-03: one component with where it is used (which App/Task, at which version) and, CL-05, its version
// history; each version opens as it was published (what a spec naming it runs).
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { library, libraryKeys } from "../../api/library";
import type { ComponentDetail as Detail } from "../../api/library";
import { useMe } from "../../auth/session";
import { ErrorBox, GuardedButton, JsonBlock, Loading, ResourceText, When } from "../../components/common";
import { mayEdit } from "./rules";

export default function ComponentDetail() {
  const { t } = useTranslation();
  const { id = "" } = useParams();
  const me = useMe().data;
  const navigate = useNavigate();
  const detail = useQuery({ queryKey: libraryKeys.detail(id), queryFn: () => library.detail(id) });

  if (detail.isPending) return <Loading />;
  if (detail.isError) return <ErrorBox error={detail.error} />;
  const c = detail.data;
  return (
    <section aria-labelledby="component-title">
      <p><Link to="/library">← {t("common.back")}</Link></p>
      <h1 id="component-title">{t("library.detail", { name: c.name })}</h1>
      <div className="toolbar">
        <GuardedButton verdict={mayEdit(me, c.owner)} className="primary" onClick={() => navigate("edit")}>
          {t("library.edit")}
        </GuardedButton>
      </div>
      <dl className="facts" data-testid="component-facts">
        <dt>ID</dt><dd>{c.component_id}</dd>
        <dt>{t("library.type")}</dt><dd>{t(`library.types.${c.type}`, { defaultValue: c.type })}</dd>
        <dt>{t("library.version")}</dt><dd data-testid="current-version">{c.version}</dd>
        <dt>{t("library.image")}</dt><dd><code>{c.image.registry}:{c.image.tag}</code></dd>
        <dt>{t("library.description")}</dt><dd data-testid="component-description">{c.description || "—"}</dd>
        <dt>{t("library.resources")}</dt><dd><ResourceText resources={c.resources} /></dd>
        <dt>{t("library.owner")}</dt><dd>{c.owner ?? t("library.platform")}</dd>
        <dt>{t("library.created")}</dt><dd>{c.created_by} · <When at={c.created_at} /></dd>
        <dt>{t("library.updated")}</dt><dd>{c.updated_by} · <When at={c.updated_at} /></dd>
        <dt>{t("library.command")}</dt><dd>{c.command.length ? <code>{c.command.join(" ")}</code> : "—"}</dd>
      </dl>
      <h2>{t("library.params")}</h2>
      <JsonBlock value={c.params} label={t("library.params")} />
      <UsedIn component={c} />
      <Versions component={c} />
    </section>
  );
}

function UsedIn({ component }: { component: Detail }) {
  const { t } = useTranslation();
  return (
    <>
      <h2 id="used-in-title">{t("library.usedInTitle")}</h2>
      <table data-testid="used-in" aria-labelledby="used-in-title">
        <caption>{t("library.usedInCaption")}</caption>
        <thead>
          <tr>
            <th scope="col">App</th>
            <th scope="col">{t("library.specVersion")}</th>
            <th scope="col">Task</th>
            <th scope="col">{t("library.placedVersion")}</th>
          </tr>
        </thead>
        <tbody>
          {component.used_in.length === 0 && (
            <tr><td colSpan={4} className="muted">{t("library.unused")}</td></tr>
          )}
          {component.used_in.map((u) => (
            <tr key={`${u.app_id}/${u.task_id}`}>
              <td>{u.app_name} <span className="muted">{u.app_id}</span></td>
              <td>{u.spec_version}</td>
              <td>{u.task_name} <span className="muted">{u.task_id}</span></td>
              <td>
                {u.library_version ?? <span className="muted">{t("library.unrecorded")}</span>}
                {u.library_version && u.library_version !== component.version && (
                  <span className="badge badge-waiting">{t("library.older")}</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Versions({ component }: { component: Detail }) {
  const { t } = useTranslation();
  const [open, setOpen] = useState<string | null>(null);
  const id = component.component_id;
  const version = useQuery({
    queryKey: libraryKeys.version(id, open ?? ""),
    queryFn: () => library.version(id, open ?? ""),
    enabled: open !== null,
  });
  return (
    <>
      <h2 id="versions-title">{t("library.versions")}</h2>
      <table data-testid="versions" aria-labelledby="versions-title">
        <caption>{t("library.versionsCaption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("library.version")}</th>
            <th scope="col">{t("library.changed")}</th>
            <th scope="col">{t("library.by")}</th>
            <th scope="col">{t("library.at")}</th>
            <th scope="col"><span className="sr-only">{t("common.view")}</span></th>
          </tr>
        </thead>
        <tbody>
          {component.versions.map((v) => (
            <tr key={v.version} data-version={v.version}>
              <td>
                {v.version}
                {v.version === component.version && <span className="badge badge-stored">{t("library.current")}</span>}
              </td>
              <td>{v.changed.length ? v.changed.map((f) => t(`library.fields.${f}`, { defaultValue: f })).join(", ") : t("library.firstVersion")}</td>
              <td>{v.created_by}</td>
              <td><When at={v.created_at} /></td>
              <td>
                <button
                  type="button"
                  aria-expanded={open === v.version}
                  aria-controls="version-snapshot"
                  onClick={() => setOpen(open === v.version ? null : v.version)}
                >
                  {t("library.viewVersion", { version: v.version })}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {open !== null && (
        <section id="version-snapshot" aria-label={t("library.snapshot", { version: open })}>
          <h3>{t("library.snapshot", { version: open })}</h3>
          {version.isPending ? <Loading /> : version.isError ? <ErrorBox error={version.error} /> : (
            <pre className="json" data-testid="version-snapshot" tabIndex={0} aria-label={t("library.snapshot", { version: open })}>{JSON.stringify(version.data.component, null, 2)}</pre>
          )}
        </section>
      )}
    </>
  );
}
