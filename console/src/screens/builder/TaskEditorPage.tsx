// Task 편집 (BL-01, BL-03, BL-06, BL-07, BL-09, BL-11): the palette, the canvas and the selected component's
// panel, with tidy, undo/redo (Ctrl+Z / Ctrl+Shift+Z) and the save state. A viewer, or a researcher on
// someone else's App, sees the same screen with nothing to change and the reason why.
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { ReactFlowProvider, useReactFlow } from "@xyflow/react";
import { useTranslation } from "react-i18next";
import type { AppView } from "../../api/builder";
import { useMe } from "../../auth/session";
import { ErrorBox, Loading } from "../../components/common";
import type { Verdict } from "../../rules/permissions";
import { ComponentPanel } from "./canvas/ComponentPanel";
import { Palette } from "./canvas/Palette";
import { TaskCanvas } from "./canvas/TaskCanvas";
import { useTaskEditor } from "./canvas/useTaskEditor";
import { ConflictBanner } from "./Conflict";
import { mayEditApp } from "./rules";
import { BuilderTabs } from "./Tabs";
import { useThresholds } from "./ThresholdBadge";
import { useApp } from "./useApp";

export default function TaskEditorPage() {
  const { appId = "", taskId = "" } = useParams();
  const { t } = useTranslation();
  const me = useMe();
  const { query, app } = useApp(appId);
  if (query.isPending) return <Loading />;
  if (query.isError || !app) return <ErrorBox error={query.error} />;
  return (
    <section aria-labelledby="task-title" className="task-editor-page">
      <p><Link to="/builder">{t("builder.back")}</Link></p>
      <h1 id="task-title">
        {app.name} <span className="muted small">{app.app_id}</span>
      </h1>
      <BuilderTabs app={app} taskId={taskId} />
      <ReactFlowProvider>
        <Editor key={`${appId}/${taskId}`} app={app} taskId={taskId} verdict={mayEditApp(me.data, app)} />
      </ReactFlowProvider>
    </section>
  );
}

const typing = (target: EventTarget | null) =>
  target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

function Editor({ app, taskId, verdict }: { app: AppView; taskId: string; verdict: Verdict }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const flow = useReactFlow();
  const editor = useTaskEditor(app.app_id, taskId);
  const thresholds = useThresholds();
  const [selected, setSelected] = useState<string | null>(null);
  const [layoutMs, setLayoutMs] = useState<number | null>(null);
  const [tidies, setTidies] = useState(0);
  const [tidying, setTidying] = useState(false);
  const editable = !verdict;

  useEffect(() => {
    if (!editable) return;
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || typing(e.target)) return;
      const key = e.key.toLowerCase();
      if (key === "z" && !e.shiftKey) {
        e.preventDefault();
        void editor.undo();
      } else if ((key === "z" && e.shiftKey) || key === "y") {
        e.preventDefault();
        void editor.redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [editor, editable]);

  if (editor.query.isPending) return <Loading />;
  if (editor.query.isError || !editor.task) return <ErrorBox error={editor.query.error} />;
  const task = editor.task;
  const component = task.components.find((c) => c.component_id === selected);
  const tidy = async () => {
    setTidying(true);
    try {
      const nodes = flow.getNodes().map((n) => ({ id: n.id, width: n.measured?.width, height: n.measured?.height }));
      setLayoutMs(Math.round(await editor.tidy(nodes)));
      setTidies((n) => n + 1);
    } finally {
      setTidying(false);
    }
  };
  const origin = task.imported_from ? app.imported_apps.find((i) => i.app_ref === task.imported_from) : null;

  return (
    <div className="task-editor" data-testid="task-editor" data-task={task.task_id} data-revision={task.revision ?? ""}>
      <div className="toolbar" role="toolbar" aria-label={t("builder.toolbar.label")}>
        <label>
          {t("builder.toolbar.task")}
          <select value={task.task_id} onChange={(e) => navigate(`/builder/${encodeURIComponent(app.app_id)}/tasks/${encodeURIComponent(e.target.value)}`)}>
            {app.tasks.map((x) => (
              <option key={x.task_id} value={x.task_id}>{x.task_id} · {x.name}</option>
            ))}
          </select>
        </label>
        {task.imported_from && (
          <span className="badge imported" data-testid="imported-from">
            {t("builder.tasks.importedFrom", { app: origin?.name ?? task.imported_from, ref: task.imported_from })}
          </span>
        )}
        <button type="button" onClick={() => void tidy()} disabled={!editable || tidying || task.components.length === 0} data-testid="tidy">
          {t("builder.toolbar.tidy")}
        </button>
        <button type="button" onClick={() => void editor.undo()} disabled={!editable || !editor.canUndo}
          title={editor.canUndo ? t(editor.history.done[editor.history.done.length - 1].label) : undefined}>
          {t("builder.toolbar.undo")}
        </button>
        <button type="button" onClick={() => void editor.redo()} disabled={!editable || !editor.canRedo}
          title={editor.canRedo ? t(editor.history.undone[editor.history.undone.length - 1].label) : undefined}>
          {t("builder.toolbar.redo")}
        </button>
        <span className={`save save-${editor.save}`} role="status" aria-live="polite" data-testid="save-state" data-save={editor.save}>
          {t(`builder.save.${editor.save}`)}
        </span>
        {layoutMs !== null && <span className="muted small" data-testid="layout-ms" data-ms={layoutMs} data-count={tidies}>{t("builder.toolbar.layoutMs", { ms: layoutMs })}</span>}
        <span className="muted small">{t("builder.toolbar.keys")}</span>
      </div>
      {verdict && <p className="reason" data-testid="editor-reason">{t(verdict.reason, verdict.values)}</p>}
      <ConflictBanner message={editor.conflict} onReload={() => void editor.reload()} />
      <ErrorBox error={editor.error} />
      <div className="editor-body">
        <Palette
          placed={new Set(task.order)}
          verdict={verdict}
          onAdd={(componentId) => void editor.place(componentId, null).then((done) => done && setSelected(componentId))}
        />
        <TaskCanvas editor={editor} thresholds={thresholds.data} editable={editable} selected={selected} onSelect={setSelected} fitKey={tidies} />
        {component ? (
          <ComponentPanel
            key={component.component_id}
            task={task}
            component={component}
            thresholds={thresholds.data}
            verdict={verdict}
            onPatch={(changes) => editor.patch(component.component_id, changes)}
            onRemove={() => {
              setSelected(null);
              void editor.remove(component.component_id);
            }}
            onConnect={(to) => void editor.connect({ from: component.component_id, to })}
            onDisconnect={(from, to) => void editor.disconnect({ from, to })}
          />
        ) : (
          <aside className="panel muted" aria-label={t("builder.panel.empty")}>
            <p>{t("builder.panel.empty")}</p>
            <p className="small">{t("builder.panel.order")}: {task.order.map((id) => task.components.find((c) => c.component_id === id)?.name ?? id).join(" → ") || "—"}</p>
          </aside>
        )}
      </div>
    </div>
  );
}
