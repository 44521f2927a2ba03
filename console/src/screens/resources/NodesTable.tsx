// RS-04: the nodes with Active / Drain / Down and their resources; an admin drains or activates one.
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { setNodeStatus, type NodeStatus, type NodeView } from "../../api/resources";
import type { Role } from "../../api/types";
import { ErrorBox, GuardedButton } from "../../components/common";
import { count, gigabytes } from "./figures";
import { mayActivate, mayDrain } from "./rules";

export function NodeStatusBadge({ status }: { status: NodeStatus }) {
  return <span className={`badge node-${status.toLowerCase()}`} data-status={status}>{status}</span>;
}

export default function NodesTable({ nodes, role }: { nodes: NodeView[]; role: Role | undefined }) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const [done, setDone] = useState<string | null>(null);
  const change = useMutation({
    mutationFn: ({ name, status }: { name: string; status: NodeStatus }) => setNodeStatus(name, status),
    onSuccess: (node) => {
      setDone(t("cluster.changed", { name: node.name, status: node.status }));
      void client.invalidateQueries({ queryKey: ["scheduler"] });
    },
  });
  const drain = (name: string) => window.confirm(t("cluster.confirmDrain", { name })) && change.mutate({ name, status: "Drain" });

  return (
    <>
      <ErrorBox error={change.error} />
      <p role="status" aria-live="polite" className="muted">{done}</p>
      <table data-testid="nodes-table">
        <caption>{t("cluster.nodesCaption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("cluster.node")}</th>
            <th scope="col">{t("cluster.status")}</th>
            <th scope="col">{t("cluster.gpus")}</th>
            <th scope="col">{t("cluster.memoryCol")}</th>
            <th scope="col">{t("cluster.cpuCol")}</th>
            <th scope="col">{t("cluster.allocations")}</th>
            <th scope="col">{t("cluster.actions")}</th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((node) => (
            <tr key={node.name} data-node={node.name} data-status={node.status}>
              <th scope="row">{node.name}</th>
              <td>
                <NodeStatusBadge status={node.status} />
                {node.observed_status !== node.status && (
                  <span className="muted"> {t("cluster.observed", { status: node.observed_status })}</span>
                )}
              </td>
              <td>
                {Object.entries(node.gpus).map(([type, gpus]) => (
                  <span key={type} className="gpu-pool">
                    {type} {gpus.allocated} / {gpus.total} <span className="muted">({gpus.memory_per_gpu})</span>
                  </span>
                ))}
              </td>
              <td>{gigabytes(node.memory.allocated_bytes)} / {gigabytes(node.memory.total_bytes)}</td>
              <td>{count(node.cpu.allocated)} / {count(node.cpu.total)}</td>
              <td>{node.allocations}</td>
              <td className="actions">
                {/* the one change that applies: drain an Active node, activate a drained or down one */}
                {node.status === "Active" ? (
                  <GuardedButton verdict={mayDrain(role, node)} busy={change.isPending}
                                 label={t("cluster.drainOf", { name: node.name })} onClick={() => drain(node.name)}>
                    {t("cluster.drain")}
                  </GuardedButton>
                ) : (
                  <GuardedButton verdict={mayActivate(role, node)} busy={change.isPending}
                                 label={t("cluster.activateOf", { name: node.name })}
                                 onClick={() => change.mutate({ name: node.name, status: "Active" })}>
                    {t("cluster.activate")}
                  </GuardedButton>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
