// API tokens (/api/tokens): everyone makes, lists and revokes their own; an admin also those of the
// service accounts. A new token's secret is shown once (CreatedTokenBox), never stored by the console.
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { createToken, listTokens, listUsers, revokeToken, TOKENS_KEY, USERS_KEY, type CreatedToken, type TokenView } from "../../api/admin";
import type { Role } from "../../api/types";
import { useMe } from "../../auth/session";
import { ErrorBox, GuardedButton, Loading, When } from "../../components/common";
import CreatedTokenBox from "./CreatedToken";
import { tokenOwners } from "./rules";

const ROLES: Role[] = ["admin", "researcher", "viewer"];

export default function Tokens() {
  const { t } = useTranslation();
  const me = useMe().data;
  const client = useQueryClient();
  const isAdmin = me?.role === "admin";
  const [owner, setOwner] = useState<string | null>(null);
  const [revoked, setRevoked] = useState(false);
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role | "">("");
  const [days, setDays] = useState("");
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  // the service accounts an admin may make tokens for (the users API has no kind filter: the first 100 users)
  const services = useQuery({
    queryKey: [...USERS_KEY, "services"],
    queryFn: () => listUsers({ page_size: 100, active: true }),
    enabled: isAdmin,
    select: (page) => page.items.filter((u) => u.kind === "service"),
  });
  const whose = owner ?? me?.user ?? "";
  const owners = tokenOwners(me, services.data ?? []);
  const tokens = useQuery({
    queryKey: [...TOKENS_KEY, whose, revoked],
    queryFn: () => listTokens(whose === me?.user ? null : whose, revoked),
    enabled: !!me,
  });
  const make = useMutation({
    mutationFn: () =>
      createToken({
        name: name.trim(),
        role: role || null,
        expires_in_days: days ? Number(days) : null,
        user: whose === me?.user ? null : whose,
      }),
    onSuccess: (token) => {
      setCreated(token);
      setName("");
      setMessage(null);
      void client.invalidateQueries({ queryKey: TOKENS_KEY });
    },
  });
  const revoke = useMutation({
    mutationFn: (token: TokenView) => revokeToken(token.id),
    onSuccess: (token) => {
      setMessage(t("admin.tokens.revoked", { name: token.name }));
      void client.invalidateQueries({ queryKey: TOKENS_KEY });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    make.mutate();
  };
  if (!me) return <Loading />;

  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">{isAdmin ? t("admin.tokens.title") : t("admin.myTokens")}</h1>
      <p className="muted">{t("admin.tokens.scope")}</p>
      {created && <CreatedTokenBox token={created} onDismiss={() => setCreated(null)} />}
      <form onSubmit={submit} className="form filters-grid" data-testid="create-token">
        {isAdmin && (
          <label>
            {t("admin.tokens.owner")}
            <select value={whose} onChange={(e) => { setOwner(e.target.value); setCreated(null); }}>
              {owners.map((id) => (
                <option key={id} value={id}>{id === me.user ? t("admin.tokens.mine", { id }) : id}</option>
              ))}
            </select>
          </label>
        )}
        <label>{t("admin.tokens.name")}<input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} /></label>
        <label>
          {t("admin.tokens.role")}
          <select value={role} onChange={(e) => setRole(e.target.value as Role | "")}>
            <option value="">{t("admin.tokens.roleDefault")}</option>
            {ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`)}</option>)}
          </select>
        </label>
        <label>
          {t("admin.tokens.expires")}
          <input type="number" min={1} max={3650} value={days} aria-describedby="expires-hint" onChange={(e) => setDays(e.target.value)} />
        </label>
        <p id="expires-hint" className="muted">{t("admin.tokens.expiresHint")}</p>
        <div className="buttons">
          <button type="submit" className="primary" disabled={make.isPending}>{t("admin.tokens.create")}</button>
        </div>
        <ErrorBox error={make.error} />
      </form>

      <p role="status" aria-live="polite" className="muted">{message}</p>
      <ErrorBox error={revoke.error} />
      <label className="check">
        <input type="checkbox" checked={revoked} onChange={(e) => setRevoked(e.target.checked)} /> {t("admin.tokens.showRevoked")}
      </label>
      {tokens.isPending ? (
        <Loading />
      ) : tokens.isError ? (
        <ErrorBox error={tokens.error} />
      ) : (
        <table data-testid="tokens-table">
          <caption>{t("admin.tokens.caption", { owner: whose })}</caption>
          <thead>
            <tr>
              <th scope="col">{t("admin.tokens.name")}</th>
              <th scope="col">{t("admin.tokens.role")}</th>
              <th scope="col">{t("admin.tokens.createdAt")}</th>
              <th scope="col">{t("admin.tokens.lastUsed")}</th>
              <th scope="col">{t("admin.tokens.expiresAt")}</th>
              <th scope="col">{t("admin.tokens.revokedAt")}</th>
              <th scope="col">{t("admin.users.actions")}</th>
            </tr>
          </thead>
          <tbody>
            {tokens.data.length === 0 && <tr><td colSpan={7} className="muted">{t("common.empty")}</td></tr>}
            {tokens.data.map((token) => (
              <tr key={token.id} data-token={token.id} data-revoked={!!token.revoked_at}>
                <th scope="row">{token.name}</th>
                <td>{t(`role.${token.role}`)}</td>
                <td><When at={token.created_at} /> <span className="muted">({token.created_by})</span></td>
                <td>{token.last_used_at ? <When at={token.last_used_at} /> : t("admin.tokens.never")}</td>
                <td>{token.expires_at ? <When at={token.expires_at} /> : t("admin.tokens.never")}</td>
                <td>{token.revoked_at ? <When at={token.revoked_at} /> : "—"}</td>
                <td className="actions">
                  <GuardedButton verdict={token.revoked_at ? { reason: "admin.tokens.alreadyRevoked" } : null} busy={revoke.isPending}
                                 label={t("admin.tokens.revokeOf", { name: token.name })}
                                 onClick={() => window.confirm(t("admin.tokens.confirmRevoke", { name: token.name })) && revoke.mutate(token)}>
                    {t("admin.tokens.revoke")}
                  </GuardedButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
