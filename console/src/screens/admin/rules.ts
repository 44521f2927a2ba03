// What an admin may do to a user from the console, and why not. The gateway still decides (e.g. it refuses
// to leave no active admin, 409); these keep an admin from locking themselves out by a click.
import type { Me } from "../../api/types";
import type { UserView } from "../../api/admin";
import { adminOnly, type Verdict } from "../../rules/permissions";

export function mayChangeRole(me: Me | undefined, user: UserView): Verdict {
  return adminOnly(me?.role) ?? (me?.user === user.id ? { reason: "admin.why.self" } : null);
}

export function mayToggleActive(me: Me | undefined, user: UserView): Verdict {
  return adminOnly(me?.role) ?? (me?.user === user.id ? { reason: "admin.why.self" } : null);
}

/** whose tokens the caller may manage here: their own, and (admins) every service account's */
export function tokenOwners(me: Me | undefined, serviceAccounts: UserView[]): string[] {
  if (!me) return [];
  return me.role === "admin" ? [me.user, ...serviceAccounts.filter((u) => u.id !== me.user).map((u) => u.id)] : [me.user];
}
