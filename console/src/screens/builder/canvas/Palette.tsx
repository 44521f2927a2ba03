// The library's components to place (BL-11): search by name or description, filter by type, drag one onto
// the canvas or press its add button (the keyboard's way); a component already in the Task is marked.
import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { builderApi, COMPONENT_TYPES, type ComponentType } from "../../../api/builder";
import { ErrorBox, Loading } from "../../../components/common";
import type { Verdict } from "../../../rules/permissions";
import { DRAG_TYPE } from "./TaskCanvas";

export function Palette({ placed, verdict, onAdd }: { placed: Set<string>; verdict: Verdict; onAdd: (componentId: string) => void }) {
  const { t } = useTranslation();
  const [q, setQ] = useState("");
  const [type, setType] = useState<ComponentType | "">("");
  const library = useQuery({
    queryKey: ["library", "components", "palette", { q, type }],
    queryFn: () => builderApi.searchLibrary(q, type),
    placeholderData: (previous) => previous,
  });
  const editable = !verdict;
  const reason = verdict ? t(verdict.reason, verdict.values) : undefined;
  return (
    <aside className="palette" aria-labelledby="palette-title">
      <h2 id="palette-title">{t("builder.palette.title")}</h2>
      <div className="palette-filters">
        <label>
          {t("builder.palette.search")}
          <input type="search" value={q} onChange={(e) => setQ(e.target.value)} />
        </label>
        <label>
          {t("builder.palette.type")}
          <select value={type} onChange={(e) => setType(e.target.value as ComponentType | "")}>
            <option value="">{t("builder.palette.allTypes")}</option>
            {COMPONENT_TYPES.map((ty) => (
              <option key={ty} value={ty}>{t(`builder.types.${ty}`)}</option>
            ))}
          </select>
        </label>
      </div>
      {reason && <p className="reason" data-testid="palette-reason">{reason}</p>}
      {library.isPending ? (
        <Loading />
      ) : library.isError ? (
        <ErrorBox error={library.error} />
      ) : (
        <ul className="palette-list" aria-label={t("builder.palette.list")}>
          {library.data.items.length === 0 && <li className="muted">{t("common.empty")}</li>}
          {library.data.items.map((c) => {
            const inTask = placed.has(c.component_id);
            return (
              <li
                key={c.component_id}
                className={`palette-item type-${c.type}`}
                draggable={editable && !inTask}
                data-component-id={c.component_id}
                data-name={c.name}
                onDragStart={(e) => {
                  e.dataTransfer.setData(DRAG_TYPE, c.component_id);
                  e.dataTransfer.effectAllowed = "copy";
                }}
              >
                <div>
                  <strong>{c.name}</strong> <span className="muted">v{c.version}</span>
                  <div className="muted small">{t(`builder.types.${c.type}`)} · {c.image.registry}:{c.image.tag}</div>
                  <div className="small">{c.resources.gpu_type} × {c.resources.gpu_count} · {c.resources.memory}</div>
                </div>
                <button
                  type="button"
                  disabled={!editable || inTask}
                  title={inTask ? t("builder.palette.inTask") : reason}
                  aria-label={inTask ? `${c.name} ${t("builder.palette.placed")}` : t("builder.palette.add", { name: c.name })}
                  onClick={() => onAdd(c.component_id)}
                >
                  {inTask ? t("builder.palette.placed") : "+"}
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </aside>
  );
}
