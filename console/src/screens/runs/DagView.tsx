// SC-03: each Task's DAG as plain SVG, read-only: a box per component coloured by its run's state, with its
// timing and allocation (node, GPUs), arrows in workflow order. Plain SVG rather than React Flow: the view is
// read-only and small (no pan, zoom or editing), so a layered layout (dag.ts) draws it with no extra chunk,
// and the same facts are in the table beside it for keyboard and screen-reader users.
import { useTranslation } from "react-i18next";
import type { ComponentRun } from "../../api/runs";
import { elapsed, formatSeconds, NODE_H, NODE_W, type TaskDag } from "./dag";

export function allocationText(run: ComponentRun | null, none: string): string {
  const a = run?.allocation;
  if (!a) return none;
  const gpus = a.gpu_count ? ` · ${a.gpu_type ?? "GPU"} ×${a.gpu_count} [${a.gpu_indices.join(",")}]` : "";
  return `${a.node}${gpus}`;
}

export function timingText(run: ComponentRun | null, now: number): string {
  if (!run) return "—";
  const seconds = elapsed(run, now);
  return seconds === null ? "—" : formatSeconds(seconds);
}

export default function DagView({
  dag,
  now,
  selected,
  onSelect,
}: {
  dag: TaskDag;
  now: number;
  selected: string | null;
  onSelect: (run: ComponentRun) => void;
}) {
  const { t } = useTranslation();
  const titleId = `dag-${dag.taskId}`;
  return (
    <figure className="dag" aria-labelledby={titleId}>
      <figcaption id={titleId}>{t("runs.dagLabel", { name: dag.name, count: dag.nodes.length })}</figcaption>
      <div className="dag-scroll">
        <svg width={dag.width} height={dag.height} viewBox={`0 0 ${dag.width} ${dag.height}`} role="img"
          aria-labelledby={titleId} data-testid={`dag-${dag.taskId}`}>
          <defs>
            <marker id={`arrow-${dag.taskId}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" fill="#5c6570" />
            </marker>
          </defs>
          {dag.edges.map((e) => (
            <path key={`${e.from}->${e.to}`} d={e.path} className="dag-edge" markerEnd={`url(#arrow-${dag.taskId})`} />
          ))}
          {dag.nodes.map((n) => {
            const status = n.run?.status ?? "pending";
            const key = n.run ? `${n.run.task_id}/${n.run.component_id}` : null;
            return (
              <g key={n.id} transform={`translate(${n.x},${n.y})`} className={`dag-node run-${status}${key && key === selected ? " selected" : ""}`}
                data-component={n.id} data-status={status} onClick={() => n.run && onSelect(n.run)}>
                <rect width={NODE_W} height={NODE_H} rx={6} />
                <text x={10} y={20} className="dag-name">{n.name.length > 26 ? `${n.name.slice(0, 25)}…` : n.name}</text>
                <text x={10} y={40} className="dag-status">{t(`runs.run.${status}`, { defaultValue: status })}{n.run && n.run.attempt > 1 ? ` · ${t("runs.attempt", { attempt: n.run.attempt })}` : ""}</text>
                <text x={10} y={58}>{t("runs.timing")}: {timingText(n.run, now)}</text>
                <text x={10} y={75}>{allocationText(n.run, t("runs.noAllocation"))}</text>
              </g>
            );
          })}
        </svg>
      </div>
    </figure>
  );
}
