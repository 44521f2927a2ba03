// The side panel of the selected component (BL-01, BL-03, BL-06): image, GPU type/count, memory and params,
// saved automatically a moment after typing stops, with the approval badge following the form as it changes.
// Its connections are listed here too, and can be made from here: the keyboard's way to connect.
import { useEffect, useId, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import type { ComponentChanges, PlacedComponent, TaskView, Thresholds } from "../../../api/builder";
import type { Verdict } from "../../../rules/permissions";
import { GuardedButton } from "../../../components/common";
import { ThresholdBadge } from "../ThresholdBadge";
import { parseMemory } from "../thresholds";

const AUTOSAVE_MS = 700;

interface Draft {
  name: string;
  registry: string;
  tag: string;
  gpu_type: string;
  gpu_count: string;
  memory: string;
  params: string;
}

const draftOf = (c: PlacedComponent): Draft => ({
  name: c.name,
  registry: c.image.registry,
  tag: c.image.tag,
  gpu_type: c.resources.gpu_type,
  gpu_count: String(c.resources.gpu_count),
  memory: c.resources.memory,
  params: JSON.stringify(c.params, null, 2),
});

/** what the draft changes, or the first problem with it (an i18n key) */
export function changesOf(c: PlacedComponent, d: Draft): { changes: ComponentChanges } | { problem: string } {
  const count = Number(d.gpu_count);
  if (!d.name.trim()) return { problem: "builder.panel.bad.name" };
  if (!d.registry.trim() || !d.tag.trim()) return { problem: "builder.panel.bad.image" };
  if (!d.gpu_type.trim()) return { problem: "builder.panel.bad.gpuType" };
  if (!Number.isInteger(count) || count < 0 || count > 1024) return { problem: "builder.panel.bad.gpuCount" };
  if (parseMemory(d.memory) === null) return { problem: "builder.panel.bad.memory" };
  let params: unknown;
  try {
    params = JSON.parse(d.params || "{}");
  } catch {
    return { problem: "builder.panel.bad.params" };
  }
  if (!params || typeof params !== "object" || Array.isArray(params)) return { problem: "builder.panel.bad.params" };
  const changes: ComponentChanges = {};
  if (d.name.trim() !== c.name) changes.name = d.name.trim();
  if (d.registry.trim() !== c.image.registry || d.tag.trim() !== c.image.tag) changes.image = { registry: d.registry.trim(), tag: d.tag.trim() };
  if (d.gpu_type.trim() !== c.resources.gpu_type || count !== c.resources.gpu_count || d.memory.trim() !== c.resources.memory) {
    changes.resources = { gpu_type: d.gpu_type.trim(), gpu_count: count, memory: d.memory.trim() };
  }
  if (JSON.stringify(params) !== JSON.stringify(c.params)) changes.params = params as Record<string, unknown>;
  return { changes };
}

export function ComponentPanel({
  task,
  component,
  thresholds,
  verdict,
  onPatch,
  onRemove,
  onConnect,
  onDisconnect,
}: {
  task: TaskView;
  component: PlacedComponent;
  thresholds: Thresholds | undefined;
  verdict: Verdict;
  onPatch: (changes: ComponentChanges) => Promise<boolean>;
  onRemove: () => void;
  onConnect: (to: string) => void;
  onDisconnect: (from: string, to: string) => void;
}) {
  const { t } = useTranslation();
  const id = useId();
  const [draft, setDraft] = useState<Draft>(() => draftOf(component));
  const dirty = useRef(false);
  const [target, setTarget] = useState("");
  const readOnly = !!verdict;

  // the component as the builder answered (after a save, an undo, a reload): the form follows unless typing
  useEffect(() => {
    if (!dirty.current) setDraft(draftOf(component));
  }, [component]);

  const checked = changesOf(component, draft);
  useEffect(() => {
    if (!dirty.current || readOnly || !("changes" in checked) || Object.keys(checked.changes).length === 0) return;
    const timer = setTimeout(() => {
      dirty.current = false;
      void onPatch(checked.changes);
    }, AUTOSAVE_MS);
    return () => clearTimeout(timer);
  }, [draft]); // eslint-disable-line react-hooks/exhaustive-deps -- saves the draft as it is once typing stops

  const field = (name: keyof Draft) => ({
    value: draft[name],
    readOnly,
    "aria-readonly": readOnly,
    onChange: (e: { target: { value: string } }) => {
      dirty.current = true;
      setDraft((d) => ({ ...d, [name]: e.target.value }));
    },
  });

  const others = task.components.filter((c) => c.component_id !== component.component_id);
  const touching = task.workflow.filter((e) => e.from === component.component_id || e.to === component.component_id);
  const nameOf = (cid: string) => task.components.find((c) => c.component_id === cid)?.name ?? cid;
  const live = {
    gpu_type: draft.gpu_type,
    gpu_count: Number(draft.gpu_count),
    memory: draft.memory,
  };

  return (
    <aside className="panel" aria-labelledby={`${id}-title`} data-testid="component-panel">
      <h2 id={`${id}-title`}>
        {component.name} <span className="muted small">{component.component_id}</span>
      </h2>
      <p>
        <ThresholdBadge resources={live} thresholds={thresholds} />
      </p>
      {verdict && <p className="reason">{t(verdict.reason, verdict.values)}</p>}
      <form className="panel-form" onSubmit={(e) => e.preventDefault()}>
        <label>{t("builder.panel.name")}<input {...field("name")} /></label>
        <fieldset>
          <legend>{t("builder.panel.image")}</legend>
          <label>{t("builder.panel.registry")}<input {...field("registry")} /></label>
          <label>{t("builder.panel.tag")}<input {...field("tag")} /></label>
        </fieldset>
        <fieldset>
          <legend>{t("builder.panel.resources")}</legend>
          <label>{t("builder.panel.gpuType")}<input {...field("gpu_type")} list={`${id}-gpus`} /></label>
          <datalist id={`${id}-gpus`}>
            <option value="A100" /><option value="H100" /><option value="V100" />
          </datalist>
          <label>{t("builder.panel.gpuCount")}<input type="number" min={0} max={1024} {...field("gpu_count")} /></label>
          <label>{t("builder.panel.memory")}<input {...field("memory")} placeholder="64GB" /></label>
        </fieldset>
        <label>
          {t("builder.panel.params")}
          <textarea rows={5} spellCheck={false} {...field("params")} />
        </label>
        {"problem" in checked && <p role="alert" className="error small">{t(checked.problem)}</p>}
      </form>

      <h3>{t("builder.panel.connections")}</h3>
      <ul className="panel-edges">
        {touching.length === 0 && <li className="muted">{t("builder.panel.noConnections")}</li>}
        {touching.map((e) => (
          <li key={`${e.from}->${e.to}`}>
            {nameOf(e.from)} → {nameOf(e.to)}{" "}
            <GuardedButton verdict={verdict} onClick={() => onDisconnect(e.from, e.to)} label={t("builder.panel.disconnectOne", { from: nameOf(e.from), to: nameOf(e.to) })}>
              {t("builder.panel.disconnect")}
            </GuardedButton>
          </li>
        ))}
      </ul>
      {!readOnly && (
        <div className="panel-connect">
          <label>
            {t("builder.panel.connectTo")}
            <select value={target} onChange={(e) => setTarget(e.target.value)}>
              <option value="">—</option>
              {[component, ...others].map((c) => (
                <option key={c.component_id} value={c.component_id}>{c.name}</option>
              ))}
            </select>
          </label>
          <button type="button" disabled={!target} onClick={() => target && onConnect(target)}>
            {t("builder.panel.connect")}
          </button>
        </div>
      )}
      <p>
        <GuardedButton verdict={verdict} onClick={onRemove} className="danger">
          {t("builder.panel.remove")}
        </GuardedButton>
      </p>
    </aside>
  );
}
