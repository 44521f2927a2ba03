// Where nodes sit: a quick column layout (the workflow's layers, left to right, as the server's SVG
// draws them) for nodes nobody placed yet, and ELK's layered layout for the "정렬" (tidy) button. elkjs is
// large, so it is imported on the first tidy only, into its own chunk.
import type { Edge } from "../../../api/builder";
import type { Positions } from "./ops";

export const NODE_W = 220;
export const NODE_H = 96;
const GAP_X = 80;
const GAP_Y = 36;

/** longest-path layers: a node sits one column right of its furthest predecessor (cycles cannot occur: BL-09) */
export function columnLayout(order: string[], edges: Edge[]): Positions {
  const preds = new Map<string, string[]>();
  for (const e of edges) preds.set(e.to, [...(preds.get(e.to) ?? []), e.from]);
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const d = Math.max(-1, ...(preds.get(id) ?? []).filter((p) => order.includes(p)).map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const rows = new Map<number, number>();
  const positions: Positions = {};
  for (const id of order) {
    const column = depthOf(id);
    const row = rows.get(column) ?? 0;
    rows.set(column, row + 1);
    positions[id] = { x: column * (NODE_W + GAP_X), y: row * (NODE_H + GAP_Y) };
  }
  return positions;
}

export interface LayoutNode {
  id: string;
  width?: number;
  height?: number;
}

type ElkGraph = { children?: { id: string; x?: number; y?: number }[] };
type Elk = { layout: (graph: unknown) => Promise<ElkGraph> };
let elk: Promise<Elk> | null = null;

function loadElk(): Promise<Elk> {
  elk ??= import("elkjs/lib/elk.bundled.js").then((module) => {
    const ELK = (module.default ?? module) as unknown as new () => Elk;
    return new ELK();
  });
  return elk;
}

/** ELK layered, left to right: the positions of every node (top-left corners, as React Flow wants them) */
export async function elkLayout(nodes: LayoutNode[], edges: Edge[]): Promise<Positions> {
  const engine = await loadElk();
  const ids = new Set(nodes.map((n) => n.id));
  const graph = await engine.layout({
    id: "task",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.layered.spacing.nodeNodeBetweenLayers": String(GAP_X),
      "elk.spacing.nodeNode": String(GAP_Y),
      "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
      // React Flow draws the edges itself: ELK's cheapest routing, not its orthogonal one (half the time)
      "elk.edgeRouting": "POLYLINE",
    },
    children: nodes.map((n) => ({ id: n.id, width: n.width ?? NODE_W, height: n.height ?? NODE_H })),
    edges: edges
      .filter((e) => ids.has(e.from) && ids.has(e.to))
      .map((e, i) => ({ id: `e${i}`, sources: [e.from], targets: [e.to] })),
  });
  const positions: Positions = {};
  for (const child of graph.children ?? []) positions[child.id] = { x: Math.round(child.x ?? 0), y: Math.round(child.y ?? 0) };
  return positions;
}
