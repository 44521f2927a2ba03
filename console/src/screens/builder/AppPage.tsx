// App 관리 for one App (BL-10, BL-12, BL-02): its Tasks (add, rename, delete; an imported one shows where it
// came from), importing another App's Tasks, and the App-level env vars, secrets masked.
import { useState } from "react";
import { Link, useParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { builderApi, type AppView } from "../../api/builder";
import { useMe } from "../../auth/session";
import { ErrorBox, GuardedButton, Loading, StatusBadge, When } from "../../components/common";
import type { Verdict } from "../../rules/permissions";
import { APPS_KEY } from "./AppList";
import { ConflictBanner } from "./Conflict";
import { EnvVarsEditor } from "./EnvVarsEditor";
import { mayEditApp } from "./rules";
import { BuilderTabs } from "./Tabs";
import { useApp } from "./useApp";

export default function AppPage() {
  const { appId = "" } = useParams();
  const { t } = useTranslation();
  const me = useMe();
  const state = useApp(appId);
  const { app } = state;
  if (state.query.isPending) return <Loading />;
  if (state.query.isError || !app) return <ErrorBox error={state.query.error} />;
  const verdict = mayEditApp(me.data, app);

  return (
    <section aria-labelledby="app-title" data-testid="app-page" data-app={app.app_id} data-revision={app.revision}>
      <p><Link to="/builder">{t("builder.back")}</Link></p>
      <h1 id="app-title">
        {app.name} <span className="muted small">{app.app_id} · v{app.version}</span>{" "}
        <StatusBadge status={app.status} label={t(`builder.appStatus.${app.status}`)} />
      </h1>
      <BuilderTabs app={app} />
      <p className="muted">
        {t("builder.app.owner")}: {app.owner ?? t("builder.apps.platform")} · {t("builder.app.updated")}: <When at={app.updated_at} /> ({app.updated_by})
      </p>
      {verdict && <p className="reason" data-testid="app-reason">{t(verdict.reason, verdict.values)}</p>}
      <ConflictBanner message={state.conflict} onReload={() => void state.reload()} />
      <ErrorBox error={state.error} />
      <TasksSection app={app} verdict={verdict} edit={state.edit} busy={state.busy} />
      <ImportSection app={app} verdict={verdict} edit={state.edit} busy={state.busy} />
      <EnvVarsEditor app={app} verdict={verdict} edit={state.edit} busy={state.busy} />
    </section>
  );
}

type Edit = (change: (revision: number) => Promise<unknown>) => Promise<boolean>;

function TasksSection({ app, verdict, edit, busy }: { app: AppView; verdict: Verdict; edit: Edit; busy: boolean }) {
  const { t } = useTranslation();
  const [name, setName] = useState("");
  const [renaming, setRenaming] = useState<Record<string, string>>({});
  const base = `/builder/${encodeURIComponent(app.app_id)}`;
  const origin = (ref: string) => app.imported_apps.find((i) => i.app_ref === ref)?.name ?? ref;
  return (
    <section aria-labelledby="tasks-title">
      <h2 id="tasks-title">{t("builder.tasks.title")}</h2>
      <table data-testid="tasks-table">
        <caption>{t("builder.tasks.caption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("builder.tasks.id")}</th>
            <th scope="col">{t("builder.tasks.name")}</th>
            <th scope="col">{t("builder.tasks.origin")}</th>
            <th scope="col">{t("builder.tasks.components")}</th>
            <th scope="col">{t("builder.tasks.actions")}</th>
          </tr>
        </thead>
        <tbody>
          {app.tasks.length === 0 && <tr><td colSpan={5} className="muted">{t("builder.tasks.none")}</td></tr>}
          {app.tasks.map((task) => {
            const draft = renaming[task.task_id];
            return (
              <tr key={task.task_id} data-task={task.task_id} data-imported-from={task.imported_from ?? ""}>
                <td>{task.task_id}</td>
                <td>
                  {draft === undefined ? (
                    task.name
                  ) : (
                    <form
                      className="inline"
                      onSubmit={(e) => {
                        e.preventDefault();
                        void edit((rev) => builderApi.renameTask(app.app_id, task.task_id, draft.trim(), rev)).then(
                          (ok) => ok && setRenaming(({ [task.task_id]: _, ...rest }) => rest),
                        );
                      }}
                    >
                      <label>
                        <span className="sr-only">{t("builder.tasks.newName", { id: task.task_id })}</span>
                        <input value={draft} onChange={(e) => setRenaming((r) => ({ ...r, [task.task_id]: e.target.value }))} required maxLength={128} autoFocus />
                      </label>
                      <button type="submit" disabled={busy || !draft.trim()}>{t("builder.tasks.save")}</button>
                    </form>
                  )}
                </td>
                <td>
                  {task.imported_from ? (
                    <span className="badge imported" data-testid="imported-from">
                      {t("builder.tasks.importedFrom", { app: origin(task.imported_from), ref: task.imported_from })}
                    </span>
                  ) : (
                    <span className="muted">{t("builder.tasks.own")}</span>
                  )}
                </td>
                <td>{task.components.length}</td>
                <td className="actions">
                  <Link to={`${base}/tasks/${encodeURIComponent(task.task_id)}`} aria-label={t("builder.tasks.editOne", { name: task.name })}>
                    {t("builder.tasks.edit")}
                  </Link>{" "}
                  <GuardedButton verdict={verdict} label={t("builder.tasks.renameOne", { name: task.name })} onClick={() => setRenaming((r) => ({ ...r, [task.task_id]: task.name }))}>
                    {t("builder.tasks.rename")}
                  </GuardedButton>{" "}
                  <GuardedButton
                    verdict={verdict}
                    busy={busy}
                    className="danger"
                    label={t("builder.tasks.deleteOne", { name: task.name })}
                    onClick={() => {
                      if (window.confirm(t("builder.tasks.confirmDelete", { name: task.name }))) {
                        void edit((rev) => builderApi.deleteTask(app.app_id, task.task_id, rev));
                      }
                    }}
                  >
                    {t("builder.tasks.delete")}
                  </GuardedButton>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <form
        className="filter"
        onSubmit={(e) => {
          e.preventDefault();
          if (!verdict && name.trim()) void edit((rev) => builderApi.addTask(app.app_id, name.trim(), rev)).then((ok) => ok && setName(""));
        }}
      >
        <label>
          {t("builder.tasks.newTask")}
          <input value={name} onChange={(e) => setName(e.target.value)} disabled={!!verdict} maxLength={128} />
        </label>
        <GuardedButton verdict={verdict ?? (name.trim() ? null : { reason: "builder.tasks.nameRequired" })} busy={busy} onClick={() => void edit((rev) => builderApi.addTask(app.app_id, name.trim(), rev)).then((ok) => ok && setName(""))}>
          {t("builder.tasks.add")}
        </GuardedButton>
      </form>
    </section>
  );
}

function ImportSection({ app, verdict, edit, busy }: { app: AppView; verdict: Verdict; edit: Edit; busy: boolean }) {
  const { t } = useTranslation();
  const [ref, setRef] = useState("");
  const apps = useQuery({ queryKey: [...APPS_KEY, "import"], queryFn: () => builderApi.listApps(1, 100) });
  const imported = new Set(app.imported_apps.map((i) => i.app_ref));
  const candidates = (apps.data?.items ?? []).filter((a) => a.app_id !== app.app_id && !imported.has(a.app_id) && a.task_count > 0);
  return (
    <section aria-labelledby="imports-title">
      <h2 id="imports-title">{t("builder.imports.title")}</h2>
      <p className="muted">{t("builder.imports.hint")}</p>
      <ul data-testid="imports">
        {app.imported_apps.length === 0 && <li className="muted">{t("builder.imports.none")}</li>}
        {app.imported_apps.map((i) => (
          <li key={i.app_ref}>
            {i.name} <span className="muted">{i.app_ref}</span>{" "}
            <GuardedButton verdict={verdict} busy={busy} label={t("builder.imports.removeOne", { name: i.name })} onClick={() => void edit((rev) => builderApi.removeImport(app.app_id, i.app_ref, rev))}>
              {t("builder.imports.remove")}
            </GuardedButton>
          </li>
        ))}
      </ul>
      <div className="filter">
        <label>
          {t("builder.imports.pick")}
          <select value={ref} onChange={(e) => setRef(e.target.value)} disabled={!!verdict}>
            <option value="">—</option>
            {candidates.map((a) => (
              <option key={a.app_id} value={a.app_id}>
                {a.name} ({a.app_id}, {t("builder.imports.tasks", { count: a.task_count })})
              </option>
            ))}
          </select>
        </label>
        <GuardedButton verdict={verdict ?? (ref ? null : { reason: "builder.imports.pickFirst" })} busy={busy} onClick={() => void edit((rev) => builderApi.importApp(app.app_id, ref, rev)).then((ok) => ok && setRef(""))}>
          {t("builder.imports.submit")}
        </GuardedButton>
      </div>
    </section>
  );
}
