// The Builder's three tabs for one App (seed 001 §2): App 관리, Task 편집, 워크플로우 시각화.
import { NavLink } from "react-router";
import { useTranslation } from "react-i18next";
import type { AppView } from "../../api/builder";

export function BuilderTabs({ app, taskId }: { app: AppView; taskId?: string }) {
  const { t } = useTranslation();
  const base = `/builder/${encodeURIComponent(app.app_id)}`;
  const task = taskId ?? app.tasks[0]?.task_id;
  return (
    <nav className="tabs" aria-label={t("builder.tabs.label")}>
      <NavLink end to={base}>{t("builder.tabs.apps")}</NavLink>
      {task ? (
        <NavLink to={`${base}/tasks/${encodeURIComponent(task)}`}>{t("builder.tabs.tasks")}</NavLink>
      ) : (
        <span className="muted" aria-disabled="true" title={t("builder.tasks.none")}>{t("builder.tabs.tasks")}</span>
      )}
      <NavLink to={`${base}/workflow`}>{t("builder.tabs.workflow")}</NavLink>
    </nav>
  );
}
