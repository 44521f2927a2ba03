// AU-02: the users — list with search and filters, create, edit name and email, change the role,
// deactivate (their sessions end, their tokens are refused) and reactivate. The gateway's /api/users.
import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { createUser, listUsers, setActive, setRole, updateUser, USERS_KEY, type NewUser, type UserView } from "../../api/admin";
import type { Role } from "../../api/types";
import { useMe } from "../../auth/session";
import { ErrorBox, GuardedButton, Loading, Pager, When } from "../../components/common";
import { mayChangeRole, mayToggleActive } from "./rules";

const ROLES: Role[] = ["admin", "researcher", "viewer"];
const PAGE_SIZE = 20;

function CreateUser({ onDone }: { onDone: (message: string) => void }) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const empty: NewUser = { id: "", display_name: "", email: "", role: "researcher", kind: "person", password: "" };
  const [draft, setDraft] = useState<NewUser>(empty);
  const create = useMutation({
    mutationFn: () =>
      createUser({
        ...draft,
        id: draft.id.trim(),
        email: draft.email?.trim() || null,
        password: draft.kind === "service" ? null : draft.password || null,
      }),
    onSuccess: (user) => {
      setDraft(empty);
      onDone(t("admin.users.made", { id: user.id }));
      void client.invalidateQueries({ queryKey: USERS_KEY });
    },
  });
  const set = (change: Partial<NewUser>) => setDraft({ ...draft, ...change });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <details className="create">
      <summary>{t("admin.users.create")}</summary>
      <form onSubmit={submit} className="form filters-grid" data-testid="create-user">
        <label>{t("admin.users.id")}<input required maxLength={255} value={draft.id} onChange={(e) => set({ id: e.target.value })} /></label>
        <label>{t("admin.users.name")}<input required maxLength={200} value={draft.display_name} onChange={(e) => set({ display_name: e.target.value })} /></label>
        <label>{t("admin.users.email")}<input type="email" maxLength={320} value={draft.email ?? ""} onChange={(e) => set({ email: e.target.value })} /></label>
        <label>
          {t("admin.users.role")}
          <select value={draft.role} onChange={(e) => set({ role: e.target.value as Role })}>
            {ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`)}</option>)}
          </select>
        </label>
        <label>
          {t("admin.users.kind")}
          <select value={draft.kind} onChange={(e) => set({ kind: e.target.value as NewUser["kind"] })}>
            <option value="person">{t("admin.users.kinds.person")}</option>
            <option value="service">{t("admin.users.kinds.service")}</option>
          </select>
        </label>
        <label>
          {t("admin.users.password")}
          <input type="password" autoComplete="new-password" disabled={draft.kind === "service"} value={draft.password ?? ""}
                 aria-describedby="password-hint" onChange={(e) => set({ password: e.target.value })} />
        </label>
        <p id="password-hint" className="muted">{t("admin.users.passwordHint")}</p>
        <div className="buttons">
          <button type="submit" className="primary" disabled={create.isPending}>{t("admin.users.create")}</button>
        </div>
        <ErrorBox error={create.error} />
      </form>
    </details>
  );
}

function EditRow({ user, onDone, onCancel }: { user: UserView; onDone: (message: string) => void; onCancel: () => void }) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const [name, setName] = useState(user.display_name);
  const [email, setEmail] = useState(user.email ?? "");
  const save = useMutation({
    mutationFn: () => updateUser(user.id, { display_name: name.trim(), email: email.trim() || null }),
    onSuccess: () => {
      onDone(t("admin.users.saved", { id: user.id }));
      void client.invalidateQueries({ queryKey: USERS_KEY });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate();
  };
  return (
    <tr className="editing">
      <td colSpan={8}>
        <form onSubmit={submit} className="form inline" aria-label={t("admin.users.editOf", { id: user.id })}>
          <label>{t("admin.users.name")}<input required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} /></label>
          <label>{t("admin.users.email")}<input type="email" maxLength={320} value={email} onChange={(e) => setEmail(e.target.value)} /></label>
          <button type="submit" className="primary" disabled={save.isPending}>{t("admin.users.save")}</button>
          <button type="button" onClick={onCancel}>{t("common.cancel")}</button>
          <ErrorBox error={save.error} />
        </form>
      </td>
    </tr>
  );
}

export default function Users() {
  const { t } = useTranslation();
  const me = useMe().data;
  const client = useQueryClient();
  const [params, setParams] = useSearchParams();
  const [editing, setEditing] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const q = params.get("q") ?? "";
  const role = params.get("role") ?? "";
  const active = params.get("active") ?? "";
  const page = Number(params.get("page") ?? "1") || 1;
  const users = useQuery({
    queryKey: [...USERS_KEY, { q, role, active, page }],
    queryFn: () => listUsers({ q, role, active, page, page_size: PAGE_SIZE }),
    placeholderData: (previous) => previous,
  });
  const set = (next: Record<string, string>) => setParams({ ...Object.fromEntries(params), page: "1", ...next });
  const changed = (text: string) => {
    setMessage(text);
    void client.invalidateQueries({ queryKey: USERS_KEY });
  };
  const roleChange = useMutation({
    mutationFn: ({ id, role }: { id: string; role: Role }) => setRole(id, role),
    onSuccess: (user) => changed(t("admin.users.roleChanged", { id: user.id, role: t(`role.${user.role}`) })),
  });
  const activeChange = useMutation({
    mutationFn: ({ id, active }: { id: string; active: boolean }) => setActive(id, active),
    onSuccess: (user) => changed(t(user.active ? "admin.users.reactivated" : "admin.users.deactivated", { id: user.id })),
  });
  const toggle = (user: UserView) => {
    if (user.active && !window.confirm(t("admin.users.confirmDeactivate", { id: user.id }))) return;
    activeChange.mutate({ id: user.id, active: !user.active });
  };

  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">{t("admin.users.title")}</h1>
      <p role="status" aria-live="polite" className="muted" data-testid="users-message">{message}</p>
      <ErrorBox error={roleChange.error ?? activeChange.error} />
      <CreateUser onDone={changed} />
      <div className="filters">
        <label>
          {t("admin.users.search")}{" "}
          <input type="search" defaultValue={q} maxLength={200} onKeyDown={(e) => e.key === "Enter" && set({ q: e.currentTarget.value })}
                 onBlur={(e) => e.currentTarget.value !== q && set({ q: e.currentTarget.value })} />
        </label>
        <label>
          {t("admin.users.roleFilter")}{" "}
          <select value={role} onChange={(e) => set({ role: e.target.value })}>
            <option value="">{t("admin.users.all")}</option>
            {ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`)}</option>)}
          </select>
        </label>
        <label>
          {t("admin.users.activeFilter")}{" "}
          <select value={active} onChange={(e) => set({ active: e.target.value })}>
            <option value="">{t("admin.users.all")}</option>
            <option value="true">{t("admin.users.active")}</option>
            <option value="false">{t("admin.users.inactive")}</option>
          </select>
        </label>
      </div>
      {users.isPending ? (
        <Loading />
      ) : users.isError ? (
        <ErrorBox error={users.error} />
      ) : (
        <>
          <table data-testid="users-table" className="users">
            <caption>{t("admin.users.caption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("admin.users.id")}</th>
                <th scope="col">{t("admin.users.name")}</th>
                <th scope="col">{t("admin.users.email")}</th>
                <th scope="col">{t("admin.users.kind")}</th>
                <th scope="col">{t("admin.users.login")}</th>
                <th scope="col">{t("admin.users.role")}</th>
                <th scope="col">{t("admin.users.status")}</th>
                <th scope="col">{t("admin.users.actions")}</th>
              </tr>
            </thead>
            <tbody>
              {users.data.items.length === 0 && <tr><td colSpan={8} className="muted">{t("common.empty")}</td></tr>}
              {users.data.items.map((user) => {
                const roleVerdict = mayChangeRole(me, user);
                const roleReason = roleVerdict ? t(roleVerdict.reason) : null;
                return [
                  <tr key={user.id} data-user={user.id} data-active={user.active}>
                    <th scope="row">{user.id}</th>
                    <td>{user.display_name}</td>
                    <td>{user.email ?? "—"}</td>
                    <td>{t(`admin.users.kinds.${user.kind}`)}</td>
                    <td>{t(`admin.users.logins.${user.login}`)}</td>
                    <td>
                      <label>
                        <span className="sr-only">{t("admin.users.roleOf", { id: user.id })}</span>
                        <select value={user.role} disabled={!!roleVerdict || roleChange.isPending} title={roleReason ?? undefined}
                                onChange={(e) => roleChange.mutate({ id: user.id, role: e.target.value as Role })}>
                          {ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`)}</option>)}
                        </select>
                      </label>
                    </td>
                    <td>
                      <span className={`badge ${user.active ? "user-active" : "user-inactive"}`}>
                        {user.active ? t("admin.users.active") : t("admin.users.inactive")}
                      </span>
                      {!user.active && user.deactivated_at && <span className="muted"> <When at={user.deactivated_at} /></span>}
                    </td>
                    <td className="actions">
                      <button type="button" aria-label={t("admin.users.editOf", { id: user.id })} aria-expanded={editing === user.id}
                              onClick={() => setEditing(editing === user.id ? null : user.id)}>
                        {t("admin.users.edit")}
                      </button>
                      <GuardedButton verdict={mayToggleActive(me, user)} busy={activeChange.isPending}
                                     label={t(user.active ? "admin.users.deactivateOf" : "admin.users.reactivateOf", { id: user.id })}
                                     onClick={() => toggle(user)}>
                        {user.active ? t("admin.users.deactivate") : t("admin.users.reactivate")}
                      </GuardedButton>
                    </td>
                  </tr>,
                  editing === user.id && (
                    <EditRow key={`${user.id}-edit`} user={user} onCancel={() => setEditing(null)}
                             onDone={(text) => { setEditing(null); changed(text); }} />
                  ),
                ];
              })}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} total={users.data.total} onPage={(p) => set({ page: String(p) })} />
        </>
      )}
    </section>
  );
}
