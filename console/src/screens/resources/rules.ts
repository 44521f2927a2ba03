// Who may drain or activate a node, and why not (services/scheduler/api.py change_node: Admin only).
import type { NodeView } from "../../api/resources";
import type { Role } from "../../api/types";
import { adminOnly, type Verdict } from "../../rules/permissions";

export function mayDrain(role: Role | undefined, node: NodeView): Verdict {
  return adminOnly(role) ?? (node.status === "Drain" ? { reason: "cluster.alreadyDrain" } : null);
}

export function mayActivate(role: Role | undefined, node: NodeView): Verdict {
  return adminOnly(role) ?? (node.status === "Active" ? { reason: "cluster.alreadyActive" } : null);
}
