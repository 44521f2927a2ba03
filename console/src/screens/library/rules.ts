// Who may change a library component (services/kit/ownership.py): its owner or an admin; a component
// without an owner is the platform's own (the seed catalog) and only an admin changes it. Pure, so a
// control is disabled with the reason before a click instead of answering 403 after it.
import type { Me } from "../../api/types";
import { writer, type Verdict } from "../../rules/permissions";

export function mayRegister(me: Me | undefined): Verdict {
  return writer(me?.role);
}

export function mayEdit(me: Me | undefined, owner: string | null): Verdict {
  if (!me || me.role === "viewer") return { reason: "why.viewerReadOnly" };
  if (me.role === "admin") return null;
  if (owner === null) return { reason: "library.why.platformOwned" };
  if (owner !== me.user) return { reason: "library.why.ownerOnly", values: { owner } };
  return null;
}
