// A workload's DAG per Task, laid out left to right (pure): each component in the column of its longest
// path from a source, in the order of the spec within a column; each joined with its run's live state.
import type { ComponentRun, SpecTask } from "../../api/runs";

export interface DagNode {
  id: string;
  name: string;
  layer: number;
  row: number;
  x: number;
  y: number;
  run: ComponentRun | null;
}

export interface DagEdge {
  from: string;
  to: string;
  path: string;
}

export interface TaskDag {
  taskId: string;
  name: string;
  nodes: DagNode[];
  edges: DagEdge[];
  width: number;
  height: number;
}

export const NODE_W = 210;
export const NODE_H = 84;
const GAP_X = 56;
const GAP_Y = 18;
const PAD = 8;

/** Column of each component: the longest chain of predecessors before it (a cycle, which the builder
 * refuses, is broken by leaving its members where they were reached). */
export function layers(ids: string[], edges: { from: string; to: string }[]): Map<string, number> {
  const known = new Set(ids);
  const incoming = new Map<string, number>(ids.map((id) => [id, 0]));
  const next = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (!known.has(e.from) || !known.has(e.to)) continue;
    next.get(e.from)!.push(e.to);
    incoming.set(e.to, incoming.get(e.to)! + 1);
  }
  const layer = new Map<string, number>(ids.map((id) => [id, 0]));
  const ready = ids.filter((id) => incoming.get(id) === 0);
  const done = new Set<string>();
  while (ready.length) {
    const id = ready.shift()!;
    done.add(id);
    for (const to of next.get(id)!) {
      layer.set(to, Math.max(layer.get(to)!, layer.get(id)! + 1));
      incoming.set(to, incoming.get(to)! - 1);
      if (incoming.get(to) === 0) ready.push(to);
    }
  }
  return layer;
}

/** The latest round's run of each component (a general loop test repeats the DAG per round). */
function latestRuns(runs: ComponentRun[], taskId: string): Map<string, ComponentRun> {
  const out = new Map<string, ComponentRun>();
  for (const run of runs) {
    if (run.task_id !== taskId) continue;
    const seen = out.get(run.component_id);
    if (!seen || run.round >= seen.round) out.set(run.component_id, run);
  }
  return out;
}

function edgePath(a: DagNode, b: DagNode): string {
  const x1 = a.x + NODE_W;
  const y1 = a.y + NODE_H / 2;
  const x2 = b.x;
  const y2 = b.y + NODE_H / 2;
  const mid = (x1 + x2) / 2;
  return `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
}

/** One DAG per Task: from the spec when the trainer has it, else from the runs alone (no edges known). */
export function taskDags(tasks: SpecTask[] | null | undefined, runs: ComponentRun[]): TaskDag[] {
  const specTasks: SpecTask[] = tasks?.length
    ? tasks
    : [...new Set(runs.map((r) => r.task_id))].map((taskId) => ({
        task_id: taskId,
        name: taskId,
        components: [...new Map(runs.filter((r) => r.task_id === taskId).map((r) => [r.component_id, { component_id: r.component_id, name: r.name }])).values()],
        workflow: [],
      }));
  return specTasks.map((task) => {
    const ids = task.components.map((c) => c.component_id);
    const layer = layers(ids, task.workflow);
    const byRun = latestRuns(runs, task.task_id);
    const rows = new Map<number, number>();
    const nodes: DagNode[] = task.components.map((c) => {
      const l = layer.get(c.component_id) ?? 0;
      const row = rows.get(l) ?? 0;
      rows.set(l, row + 1);
      return {
        id: c.component_id, name: c.name, layer: l, row,
        x: PAD + l * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y),
        run: byRun.get(c.component_id) ?? null,
      };
    });
    const at = new Map(nodes.map((n) => [n.id, n]));
    const edges = task.workflow
      .filter((e) => at.has(e.from) && at.has(e.to))
      .map((e) => ({ from: e.from, to: e.to, path: edgePath(at.get(e.from)!, at.get(e.to)!) }));
    const columns = Math.max(1, ...nodes.map((n) => n.layer + 1));
    const tallest = Math.max(1, ...rows.values());
    return {
      taskId: task.task_id, name: task.name, nodes, edges,
      width: PAD * 2 + columns * NODE_W + (columns - 1) * GAP_X,
      height: PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y,
    };
  });
}

/** Seconds a run has taken so far (or took), for the node's timing line. */
export function elapsed(run: ComponentRun, now: number): number | null {
  if (run.duration_s !== null) return run.duration_s;
  if (!run.started_at) return null;
  return Math.max(0, (now - Date.parse(run.started_at)) / 1000);
}

export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m}m ${s}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}
