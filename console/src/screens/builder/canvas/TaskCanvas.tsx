// The Task's workflow on a React Flow canvas: nodes are placed components, edges the workflow, a refused
// connection a dashed red edge with the builder's message. Library components are dropped in from the
// palette; handles are dragged to connect; Delete removes the selection. Every change goes through the
// editor (useTaskEditor), which saves it and records the undo step.
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import {
  Background, Controls, MarkerType, MiniMap, ReactFlow, applyNodeChanges, useReactFlow,
  type Connection, type Edge as FlowEdge, type NodeChange, type OnNodeDrag,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useTranslation } from "react-i18next";
import type { Thresholds } from "../../../api/builder";
import { ComponentNode, type ComponentNodeType } from "./ComponentNode";
import { RefusedEdge, type RefusedEdgeType } from "./RefusedEdge";
import type { Positions } from "./ops";
import type { TaskEditor } from "./useTaskEditor";

export const DRAG_TYPE = "application/x-avatar-component";
const nodeTypes = { component: ComponentNode };
const edgeTypes = { refused: RefusedEdge };
const FIT = { maxZoom: 1, padding: 0.15 }; // a lone node is not blown up to fill the canvas
const MINIMAP = { width: 140, height: 90 };
const edgeId = (from: string, to: string) => `${from}->${to}`;

export function TaskCanvas({
  editor,
  thresholds,
  editable,
  selected,
  onSelect,
  fitKey = 0,
}: {
  editor: TaskEditor;
  thresholds: Thresholds | undefined;
  editable: boolean;
  selected: string | null;
  onSelect: (componentId: string | null) => void;
  /** a change fits the view to the nodes once they are drawn (after a tidy) */
  fitKey?: number;
}) {
  const { t } = useTranslation();
  const flow = useReactFlow();
  const { task, positions, refusals, dismiss } = editor;
  const [nodes, setNodes] = useState<ComponentNodeType[]>([]);
  const dragStart = useRef<Positions>({});

  useEffect(() => {
    if (!task) return;
    setNodes(
      task.components.map((component) => ({
        id: component.component_id,
        type: "component" as const,
        position: positions[component.component_id] ?? { x: 0, y: 0 },
        data: { component, thresholds, editable },
        selected: component.component_id === selected,
        ariaLabel: t("builder.canvas.node", { name: component.name, order: component.order }),
      })),
    );
  }, [task, positions, thresholds, editable, selected, t]);

  useEffect(() => {
    if (fitKey === 0) return;
    // two frames: the new positions reach React Flow's store, then they are measured
    const first = requestAnimationFrame(() => {
      second = requestAnimationFrame(() => void flow.fitView(FIT));
    });
    let second = 0;
    return () => {
      cancelAnimationFrame(first);
      cancelAnimationFrame(second);
    };
  }, [fitKey, flow]);

  const edges = useMemo<(FlowEdge | RefusedEdgeType)[]>(() => {
    if (!task) return [];
    const drawn: (FlowEdge | RefusedEdgeType)[] = task.workflow.map((e) => ({
      id: edgeId(e.from, e.to),
      source: e.from,
      target: e.to,
      markerEnd: { type: MarkerType.ArrowClosed, width: 18, height: 18 },
      ariaLabel: t("builder.canvas.edge", { from: e.from, to: e.to }),
      deletable: editable,
    }));
    for (const r of editor.refusals) {
      drawn.push({
        id: r.id,
        type: "refused",
        source: r.edge.from,
        target: r.edge.to,
        selectable: false,
        deletable: false,
        data: { message: r.message, code: r.code, onDismiss: () => dismiss(r.id) },
      });
    }
    return drawn;
  }, [task, refusals, editable, dismiss, t]);

  const onNodesChange = useCallback(
    (changes: NodeChange<ComponentNodeType>[]) => {
      // removals go through the builder (onNodesDelete); everything else (drag, selection, size) is local
      setNodes((current) => applyNodeChanges(changes.filter((c) => c.type !== "remove"), current));
      // a person selected a node (click or keyboard): the panel shows it; a deselection of all closes it
      const selections = changes.filter((c) => c.type === "select");
      const picked = selections.filter((c) => c.selected);
      if (picked.length > 0) onSelect(picked[picked.length - 1].id);
      else if (selections.length > 0) onSelect(null);
    },
    [onSelect],
  );

  const onNodeDragStart: OnNodeDrag<ComponentNodeType> = useCallback(() => {
    dragStart.current = { ...editor.positions };
  }, [editor.positions]);

  const onNodeDragStop: OnNodeDrag<ComponentNodeType> = useCallback(
    (_event, _node, dragged) => {
      const after: Positions = {};
      for (const n of dragged) after[n.id] = { x: Math.round(n.position.x), y: Math.round(n.position.y) };
      void editor.moved(dragStart.current, { ...dragStart.current, ...after });
    },
    [editor],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      if (c.source && c.target) void editor.connect({ from: c.source, to: c.target });
    },
    [editor],
  );

  const onDrop = useCallback(
    (event: DragEvent) => {
      const componentId = event.dataTransfer.getData(DRAG_TYPE);
      if (!componentId || !editable) return;
      event.preventDefault();
      const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      void editor.place(componentId, { x: Math.round(at.x), y: Math.round(at.y) }).then((done) => done && onSelect(componentId));
    },
    [flow, editor, editable, onSelect],
  );

  return (
    <div className="canvas" data-testid="canvas">
      <ReactFlow
        onDragOver={(e) => {
          if (!editable) return;
          e.preventDefault();
          e.dataTransfer.dropEffect = "copy";
        }}
        onDrop={onDrop}
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodesChange={onNodesChange}
        onNodeDragStart={onNodeDragStart}
        onNodeDragStop={onNodeDragStop}
        onConnect={onConnect}
        onNodesDelete={(deleted) => deleted.forEach((n) => void editor.remove(n.id))}
        onEdgesDelete={(deleted) =>
          deleted.filter((e) => e.type !== "refused").forEach((e) => void editor.disconnect({ from: e.source, to: e.target }))
        }
        nodesDraggable={editable}
        nodesConnectable={editable}
        edgesFocusable
        deleteKeyCode={editable ? ["Delete", "Backspace"] : null}
        fitView
        fitViewOptions={FIT}
        minZoom={0.1}
        aria-label={t("builder.canvas.label")}
      >
        <Background gap={16} />
        <Controls showInteractive={false} />
        <MiniMap pannable zoomable ariaLabel={t("builder.canvas.minimap")} style={MINIMAP} />
      </ReactFlow>
    </div>
  );
}
