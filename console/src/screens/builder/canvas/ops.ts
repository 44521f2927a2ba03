// What one canvas edit does, as data: a step is the operations that do it and the ones that undo it, so
// undo/redo replays operations against the builder (and a tidy, which only moves nodes, is one step).
import type { ComponentChanges, Edge, ImageRef, ComponentResources, PlacedComponent, TaskView } from "../../../api/builder";

export interface XY {
  x: number;
  y: number;
}
export type Positions = Record<string, XY>;

/** everything needed to place a removed component back as it was */
export interface Placement {
  component_id: string;
  name: string;
  image: ImageRef;
  resources: ComponentResources;
  params: Record<string, unknown>;
}

export type Op =
  | { kind: "place"; component: Placement }
  | { kind: "remove"; componentId: string }
  | { kind: "connect"; edge: Edge }
  | { kind: "disconnect"; edge: Edge }
  | { kind: "patch"; componentId: string; changes: ComponentChanges }
  | { kind: "order"; order: string[] }
  | { kind: "move"; positions: Positions };

export interface Step {
  label: string; // an i18n key naming the edit (shown in the undo button's title)
  forward: Op[];
  backward: Op[];
}

export const placementOf = (c: PlacedComponent): Placement => ({
  component_id: c.component_id,
  name: c.name,
  image: c.image,
  resources: c.resources,
  params: c.params,
});

const sameEdge = (a: Edge, b: Edge) => a.from === b.from && a.to === b.to;

/** placing a library component (at a position); undone by removing it */
export function placeStep(componentId: string, at: XY | null, placed?: Placement): Step {
  const forward: Op[] = [{ kind: "place", component: placed ?? ({ component_id: componentId } as Placement) }];
  if (at) forward.push({ kind: "move", positions: { [componentId]: at } });
  return { label: "builder.step.place", forward, backward: [{ kind: "remove", componentId }] };
}

/** docs/spec.md §13.3: removing a component takes its edges; undo places it back with them and its order */
export function removeStep(task: TaskView, componentId: string, positions: Positions): Step {
  const component = task.components.find((c) => c.component_id === componentId);
  if (!component) throw new Error(`component ${componentId} is not in task ${task.task_id}`);
  const edges = task.workflow.filter((e) => e.from === componentId || e.to === componentId);
  const backward: Op[] = [{ kind: "place", component: placementOf(component) }];
  for (const edge of edges) backward.push({ kind: "connect", edge });
  backward.push({ kind: "order", order: task.order });
  if (positions[componentId]) backward.push({ kind: "move", positions: { [componentId]: positions[componentId] } });
  return { label: "builder.step.remove", forward: [{ kind: "remove", componentId }], backward };
}

/** a new edge; undone by removing it and putting back the order the builder may have moved to respect it */
export function connectStep(task: TaskView, edge: Edge): Step {
  return {
    label: "builder.step.connect",
    forward: [{ kind: "connect", edge }],
    backward: [{ kind: "disconnect", edge }, { kind: "order", order: task.order }],
  };
}

export function disconnectStep(task: TaskView, edge: Edge): Step {
  if (!task.workflow.some((e) => sameEdge(e, edge))) throw new Error(`no edge ${edge.from} → ${edge.to}`);
  return { label: "builder.step.disconnect", forward: [{ kind: "disconnect", edge }], backward: [{ kind: "connect", edge }] };
}

/** a change of the side panel's fields; undone by the fields' previous values */
export function patchStep(component: PlacedComponent, changes: ComponentChanges): Step {
  const previous: ComponentChanges = {};
  if (changes.name !== undefined) previous.name = component.name;
  if (changes.image !== undefined) previous.image = component.image;
  if (changes.resources !== undefined) previous.resources = component.resources;
  if (changes.params !== undefined) previous.params = component.params;
  return {
    label: "builder.step.patch",
    forward: [{ kind: "patch", componentId: component.component_id, changes }],
    backward: [{ kind: "patch", componentId: component.component_id, changes: previous }],
  };
}

/** nodes moved by a drag or by the tidy button: one step however many nodes moved */
export function moveStep(before: Positions, after: Positions, label = "builder.step.move"): Step {
  const was: Positions = {};
  const now: Positions = {};
  for (const [id, xy] of Object.entries(after)) {
    const old = before[id];
    if (old && old.x === xy.x && old.y === xy.y) continue;
    now[id] = xy;
    if (old) was[id] = old;
  }
  return { label, forward: [{ kind: "move", positions: now }], backward: [{ kind: "move", positions: was }] };
}

export const movesNothing = (step: Step) =>
  step.forward.every((op) => op.kind === "move" && Object.keys(op.positions).length === 0);
