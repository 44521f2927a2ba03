// One placed component on the canvas: name, type, resources and its approval badge (BL-06), with a target
// handle on the left and a source handle on the right (connections run left to right).
import { memo } from "react";
import { Handle, Position, type Node, type NodeProps } from "@xyflow/react";
import { useTranslation } from "react-i18next";
import type { PlacedComponent, Thresholds } from "../../../api/builder";
import { ThresholdBadge } from "../ThresholdBadge";

export type ComponentNodeData = {
  component: PlacedComponent;
  thresholds: Thresholds | undefined;
  editable: boolean;
};
export type ComponentNodeType = Node<ComponentNodeData, "component">;

function ComponentNodeView({ data, selected }: NodeProps<ComponentNodeType>) {
  const { t } = useTranslation();
  const c = data.component;
  return (
    <div
      className={`flow-node type-${c.type}${selected ? " selected" : ""}`}
      data-component-id={c.component_id}
      data-testid="canvas-node"
    >
      {/* the handles are the pointer's way to connect; the side panel is the keyboard's (and says it) */}
      <Handle type="target" position={Position.Left} isConnectable={data.editable} title={t("builder.canvas.in", { name: c.name })} aria-hidden="true" />
      <div className="flow-node-head">
        <span className="flow-order" title={t("builder.canvas.order")}>{c.order}</span>
        <strong>{c.name}</strong>
      </div>
      <div className="flow-node-type">{t(`builder.types.${c.type}`)}</div>
      <div className="flow-node-res">
        {c.resources.gpu_type} × {c.resources.gpu_count} · {c.resources.memory}
      </div>
      <ThresholdBadge resources={c.resources} thresholds={data.thresholds} compact />
      <Handle type="source" position={Position.Right} isConnectable={data.editable} title={t("builder.canvas.out", { name: c.name })} aria-hidden="true" />
    </div>
  );
}

export const ComponentNode = memo(ComponentNodeView);
