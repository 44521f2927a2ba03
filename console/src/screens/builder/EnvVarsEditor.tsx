// BL-02: the App-level env vars every component shares. A secret's value is never shown (the builder only
// says whether it is set); typing a new value replaces it, leaving it empty keeps the one it has.
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { builderApi, type AppView, type EnvInput } from "../../api/builder";
import { GuardedButton } from "../../components/common";
import type { Verdict } from "../../rules/permissions";

interface Row {
  key: string;
  value: string;
  secret: boolean;
  set: boolean; // a secret that already has a value
}

const rowsOf = (app: AppView): Row[] => [
  ...Object.entries(app.env_vars).map(([key, value]) => ({ key, value, secret: false, set: false })),
  ...app.secret_env_vars.map((s) => ({ key: s.name, value: "", secret: true, set: s.set })),
];

/** the PUT body: a plain value as it is; a secret with its new value, or without one to keep it */
export function envBody(rows: Row[]): Record<string, EnvInput> {
  const body: Record<string, EnvInput> = {};
  for (const row of rows) {
    const key = row.key.trim();
    if (!key) continue;
    body[key] = row.secret ? (row.value ? { value: row.value, secret: true } : { secret: true }) : { value: row.value, secret: false };
  }
  return body;
}

export function EnvVarsEditor({ app, verdict, edit, busy }: { app: AppView; verdict: Verdict; edit: (c: (rev: number) => Promise<unknown>) => Promise<boolean>; busy: boolean }) {
  const { t } = useTranslation();
  const [rows, setRows] = useState<Row[]>(() => rowsOf(app));
  const [dirty, setDirty] = useState(false);
  useEffect(() => {
    if (!dirty) setRows(rowsOf(app));
  }, [app, dirty]);
  const readOnly = !!verdict;
  const change = (index: number, patch: Partial<Row>) => {
    setDirty(true);
    setRows((current) => current.map((row, i) => (i === index ? { ...row, ...patch } : row)));
  };
  return (
    <section aria-labelledby="env-title">
      <h2 id="env-title">{t("builder.env.title")}</h2>
      <p className="muted">{t("builder.env.hint")}</p>
      <table data-testid="env-table">
        <caption>{t("builder.env.caption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("builder.env.key")}</th>
            <th scope="col">{t("builder.env.value")}</th>
            <th scope="col">{t("builder.env.secret")}</th>
            <th scope="col">{t("builder.tasks.actions")}</th>
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 && <tr><td colSpan={4} className="muted">{t("builder.env.none")}</td></tr>}
          {rows.map((row, i) => (
            <tr key={i} data-env={row.key} data-secret={row.secret}>
              <td>
                <label>
                  <span className="sr-only">{t("builder.env.key")} {i + 1}</span>
                  <input value={row.key} readOnly={readOnly || (row.secret && row.set)} onChange={(e) => change(i, { key: e.target.value })} />
                </label>
              </td>
              <td>
                {row.secret ? (
                  <label>
                    <span className="sr-only">{t("builder.env.secretValue", { key: row.key })}</span>
                    <input
                      type="password"
                      autoComplete="new-password"
                      value={row.value}
                      readOnly={readOnly}
                      placeholder={row.set ? t("builder.env.masked") : t("builder.env.notSet")}
                      onChange={(e) => change(i, { value: e.target.value })}
                    />
                  </label>
                ) : (
                  <label>
                    <span className="sr-only">{t("builder.env.valueOf", { key: row.key })}</span>
                    <input value={row.value} readOnly={readOnly} onChange={(e) => change(i, { value: e.target.value })} />
                  </label>
                )}
              </td>
              <td>
                <label>
                  <input type="checkbox" checked={row.secret} disabled={readOnly || row.set} onChange={(e) => change(i, { secret: e.target.checked, value: "" })} />{" "}
                  {row.secret ? (row.set ? t("builder.env.set") : t("builder.env.notSet")) : t("builder.env.plain")}
                </label>
              </td>
              <td>
                <GuardedButton verdict={verdict} label={t("builder.env.removeOne", { key: row.key })} onClick={() => { setDirty(true); setRows((r) => r.filter((_, j) => j !== i)); }}>
                  {t("builder.env.remove")}
                </GuardedButton>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <GuardedButton verdict={verdict} onClick={() => { setDirty(true); setRows((r) => [...r, { key: "", value: "", secret: false, set: false }]); }}>
          {t("builder.env.add")}
        </GuardedButton>{" "}
        <GuardedButton
          verdict={verdict ?? (dirty ? null : { reason: "builder.env.unchanged" })}
          busy={busy}
          onClick={() => void edit((rev) => builderApi.putEnvVars(app.app_id, envBody(rows), rev)).then((ok) => ok && setDirty(false))}
        >
          {t("builder.env.save")}
        </GuardedButton>
      </p>
    </section>
  );
}
