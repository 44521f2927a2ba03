// App 관리 (BL-05): every App with its task count, component count and largest component (the resources a
// training of it asks for by default), and a form to create one.
import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { builderApi } from "../../api/builder";
import { useMe } from "../../auth/session";
import { ErrorBox, GuardedButton, Loading, StatusBadge, When } from "../../components/common";
import { mayCreateApp } from "./rules";
import { ThresholdBadge, useThresholds } from "./ThresholdBadge";

export const APPS_KEY = ["builder", "apps"] as const;

export default function AppList() {
  const { t } = useTranslation();
  const me = useMe();
  const navigate = useNavigate();
  const client = useQueryClient();
  const thresholds = useThresholds();
  const apps = useQuery({ queryKey: APPS_KEY, queryFn: () => builderApi.listApps() });
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const create = useMutation({
    mutationFn: () => builderApi.createApp(name.trim(), description.trim()),
    onSuccess: (app) => {
      void client.invalidateQueries({ queryKey: APPS_KEY });
      navigate(`/builder/${encodeURIComponent(app.app_id)}`);
    },
  });
  const verdict = mayCreateApp(me.data);

  return (
    <section aria-labelledby="builder-title">
      <h1 id="builder-title">{t("builder.title")}</h1>
      <p className="muted">{t("builder.intro")}</p>
      <form
        className="filter create-app"
        aria-labelledby="create-app-title"
        onSubmit={(e) => {
          e.preventDefault();
          if (!verdict && name.trim()) create.mutate();
        }}
      >
        <h2 id="create-app-title">{t("builder.create.title")}</h2>
        <label>
          {t("builder.create.name")}
          <input value={name} onChange={(e) => setName(e.target.value)} disabled={!!verdict} required maxLength={128} />
        </label>
        <label>
          {t("builder.create.description")}
          <input value={description} onChange={(e) => setDescription(e.target.value)} disabled={!!verdict} maxLength={2000} />
        </label>
        <GuardedButton verdict={verdict ?? (name.trim() ? null : { reason: "builder.create.nameRequired" })} busy={create.isPending} onClick={() => create.mutate()}>
          {t("builder.create.submit")}
        </GuardedButton>
      </form>
      <ErrorBox error={create.error} />
      {apps.isPending ? (
        <Loading />
      ) : apps.isError ? (
        <ErrorBox error={apps.error} />
      ) : (
        <table data-testid="apps-table">
          <caption>{t("builder.apps.caption")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("builder.apps.name")}</th>
              <th scope="col">{t("builder.apps.status")}</th>
              <th scope="col">{t("builder.apps.tasks")}</th>
              <th scope="col">{t("builder.apps.components")}</th>
              <th scope="col">{t("builder.apps.largest")}</th>
              <th scope="col">{t("builder.apps.spec")}</th>
              <th scope="col">{t("builder.apps.owner")}</th>
              <th scope="col">{t("builder.apps.updated")}</th>
            </tr>
          </thead>
          <tbody>
            {apps.data.items.length === 0 && (
              <tr><td colSpan={8} className="muted">{t("common.empty")}</td></tr>
            )}
            {apps.data.items.map((a) => (
              <tr key={a.app_id} data-app={a.app_id}>
                <td>
                  <Link to={`/builder/${encodeURIComponent(a.app_id)}`}>{a.name}</Link> <span className="muted small">{a.app_id}</span>
                </td>
                <td><StatusBadge status={a.status} label={t(`builder.appStatus.${a.status}`)} /></td>
                <td>{a.task_count}</td>
                <td>{a.component_count}</td>
                <td>
                  {a.largest_component ? (
                    <>
                      {a.largest_component.name}: {a.largest_component.resources.gpu_type} × {a.largest_component.resources.gpu_count} · {a.largest_component.resources.memory}{" "}
                      <ThresholdBadge resources={a.largest_component.resources} thresholds={thresholds.data} compact />
                    </>
                  ) : (
                    "—"
                  )}
                </td>
                <td>
                  {a.latest_spec_version ?? "—"}
                  {a.has_unpublished_changes && a.latest_spec_version && <span className="muted small"> ({t("builder.apps.unpublished")})</span>}
                </td>
                <td>{a.owner ?? t("builder.apps.platform")}</td>
                <td><When at={a.updated_at} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
