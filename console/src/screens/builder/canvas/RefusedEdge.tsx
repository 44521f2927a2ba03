// BL-09 on the canvas: the connection the builder refused, drawn dashed red where it was dragged, with the
// service's own Korean message at the edge (docs/spec.md §13.2) until dismissed or timed out.
import { BaseEdge, EdgeLabelRenderer, getBezierPath, type Edge, type EdgeProps } from "@xyflow/react";
import { useTranslation } from "react-i18next";

export type RefusedEdgeData = { message: string; code: string; onDismiss: () => void };
export type RefusedEdgeType = Edge<RefusedEdgeData, "refused">;

export function RefusedEdge({ id, source, target, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, data }: EdgeProps<RefusedEdgeType>) {
  const { t } = useTranslation();
  let path: string;
  let labelX: number;
  let labelY: number;
  if (source === target) {
    // a self-loop: an arc above the node from its right handle back to its left one
    const top = Math.min(sourceY, targetY) - 90;
    path = `M ${sourceX} ${sourceY} C ${sourceX + 80} ${top}, ${targetX - 80} ${top}, ${targetX} ${targetY}`;
    labelX = (sourceX + targetX) / 2;
    labelY = top + 20;
  } else {
    [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  }
  return (
    <>
      <BaseEdge id={id} path={path} className="refused-edge" style={{ stroke: "#b91c1c", strokeWidth: 2, strokeDasharray: "6 4" }} />
      <EdgeLabelRenderer>
        <div
          className="refusal nodrag nopan"
          role="alert"
          data-testid="edge-refusal"
          data-code={data?.code}
          style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
        >
          <span>{data?.message}</span>
          <button type="button" onClick={data?.onDismiss} aria-label={t("builder.canvas.dismiss")}>
            ×
          </button>
        </div>
      </EdgeLabelRenderer>
    </>
  );
}
