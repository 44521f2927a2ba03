// Who may move an App's model alias from the model screen, and why not (the models service decides:
// the App's owner or an admin, a stored model of the same App, and the alias not moved meanwhile).
import type { Me } from "../api/types";
import type { AliasMoveRecord, AliasView } from "../api/models";
import type { Verdict } from "./permissions";
import { writer } from "./permissions";

export const ALIAS_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;

/** the App as the builder tells it (GET /api/builder/apps/{id}); undefined while unknown (not loaded, or the
 * builder does not answer): then the console does not judge and the models service's answer is shown */
export type AliasApp = { owner: string | null } | undefined;

/** an App's aliases follow the App's owner (docs/architecture.md §2): its owner or an admin; a platform-owned
 * App (owner null) only an admin */
export function mayMoveAliasesOf(me: Me | undefined, app: AliasApp): Verdict {
  const role = writer(me?.role);
  if (role) return role;
  if (!app || me?.role === "admin") return null;
  if (app.owner === null) return { reason: "why.platformApp" };
  return app.owner === me?.user ? null : { reason: "why.appOwnerOrAdmin", values: { owner: app.owner } };
}

/** point `alias` (existing, or a new name) at `model` */
export function mayPromote(me: Me | undefined, model: { model_id: string; status: string }, alias: string,
                           current: AliasView | undefined, app?: AliasApp): Verdict {
  const owner = mayMoveAliasesOf(me, app);
  if (owner) return owner;
  if (model.status !== "stored") return { reason: "why.notStored" };
  if (!ALIAS_PATTERN.test(alias)) return { reason: "why.aliasName" };
  if (current?.model_id === model.model_id) return { reason: "why.aliasHere", values: { alias } };
  return null;
}

/** the move a rollback would undo: the newest forward move not undone yet (history is newest first) */
export function undoableMove(alias: AliasView): AliasMoveRecord | undefined {
  const move = alias.history.find((m) => m.action === "move" && !m.undone);
  return move?.from_model_id ? move : undefined;
}

/** return `alias` to where it pointed before that move */
export function mayRollBack(me: Me | undefined, alias: AliasView, app?: AliasApp): Verdict {
  const owner = mayMoveAliasesOf(me, app);
  if (owner) return owner;
  if (!undoableMove(alias)) return { reason: "why.nothingToRollBack" };
  return null;
}

/** the models every row of a compare table is measured on, and the best value of each metric (higher is better
 * unless the metric's name says it is a loss, an error or a time) */
export function bestOf(metric: string, values: Record<string, number | null>): string | null {
  const lowerIsBetter = /loss|error|time|duration|latency/i.test(metric);
  let best: string | null = null;
  for (const [id, value] of Object.entries(values)) {
    if (value == null) continue;
    const current = best == null ? null : values[best];
    if (current == null || (lowerIsBetter ? value < current : value > current)) best = id;
  }
  return best;
}
