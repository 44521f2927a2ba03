// Who may change an App (services/kit/ownership.py): its owner or an admin; a platform-owned App (owner
// null) only an admin; a viewer nobody's. Pure, so a control is disabled with the reason before a click.
import type { Me } from "../../api/types";
import type { Verdict } from "../../rules/permissions";

export function mayCreateApp(me: Me | undefined): Verdict {
  return me && me.role !== "viewer" ? null : { reason: "why.viewerReadOnly" };
}

export function mayEditApp(me: Me | undefined, app: { owner: string | null } | undefined): Verdict {
  if (!me || me.role === "viewer") return { reason: "why.viewerReadOnly" };
  if (me.role === "admin") return null;
  if (!app) return { reason: "why.viewerReadOnly" };
  if (app.owner === null) return { reason: "builder.why.platformOwned" };
  return app.owner === me.user ? null : { reason: "builder.why.ownerOrAdmin", values: { owner: app.owner } };
}
