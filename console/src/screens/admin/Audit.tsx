// AU-04: the audit log — filters by user, action, target, kind, outcome and time range (kept in the URL),
// keyset paging (next_before_id), and the CSV export of every matching row with the same filters.
import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { AUDIT_KEY, auditCsvUrl, searchAudit } from "../../api/admin";
import type { Query } from "../../api/client";
import { ErrorBox, Loading, When } from "../../components/common";
import { changesOf } from "./auditChanges";
import { auditQuery, FilterError, filtersFrom, KINDS, NO_FILTERS, OUTCOMES, paramsOf, type AuditFilters } from "./auditQuery";

const PAGE_SIZE = 50;

export default function Audit() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const applied = filtersFrom(params);
  const [draft, setDraft] = useState<AuditFilters>(applied);
  const [cursors, setCursors] = useState<(number | null)[]>([null]); // before_id of each page seen; page 1: none
  let query: Query | null = null;
  let invalid: string | null = null;
  try {
    query = auditQuery(applied);
  } catch (error) {
    invalid = error instanceof FilterError && error.message === "order" ? t("admin.audit.badOrder") : t("admin.audit.badTime");
  }
  const page = cursors.length;
  const before = cursors[cursors.length - 1];
  const entries = useQuery({
    queryKey: [...AUDIT_KEY, query, before],
    queryFn: () => searchAudit({ ...query, limit: PAGE_SIZE, before_id: before }),
    enabled: query !== null,
    placeholderData: (previous) => previous,
  });
  const apply = (filters: AuditFilters) => {
    setCursors([null]);
    setParams(paramsOf(filters));
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    apply(draft);
  };
  const set = (change: Partial<AuditFilters>) => setDraft({ ...draft, ...change });
  const text = (field: "user" | "action" | "targetType" | "targetId", max: number) => (
    <label>
      {t(`admin.audit.${field}`)}
      <input value={draft[field]} maxLength={max} onChange={(e) => set({ [field]: e.target.value })} />
    </label>
  );

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">{t("admin.audit.title")}</h1>
      <form onSubmit={submit} className="form filters-grid" aria-label={t("admin.audit.filters")} data-testid="audit-filters">
        {text("user", 255)}
        {text("action", 64)}
        {text("targetType", 64)}
        {text("targetId", 255)}
        <label>
          {t("admin.audit.kind")}
          <select value={draft.kind} onChange={(e) => set({ kind: e.target.value as AuditFilters["kind"] })}>
            <option value="">{t("admin.audit.any")}</option>
            {KINDS.map((k) => <option key={k} value={k}>{t(`admin.audit.kinds.${k}`)}</option>)}
          </select>
        </label>
        <label>
          {t("admin.audit.outcome")}
          <select value={draft.outcome} onChange={(e) => set({ outcome: e.target.value as AuditFilters["outcome"] })}>
            <option value="">{t("admin.audit.any")}</option>
            {OUTCOMES.map((o) => <option key={o} value={o}>{t(`admin.audit.outcomes.${o}`)}</option>)}
          </select>
        </label>
        <label>{t("admin.audit.from")}<input type="datetime-local" value={draft.from} onChange={(e) => set({ from: e.target.value })} /></label>
        <label>{t("admin.audit.to")}<input type="datetime-local" value={draft.to} onChange={(e) => set({ to: e.target.value })} /></label>
        <div className="buttons">
          <button type="submit" className="primary">{t("admin.audit.apply")}</button>
          <button type="button" onClick={() => { setDraft(NO_FILTERS); apply(NO_FILTERS); }}>{t("admin.audit.reset")}</button>
          {query && (
            <a className="button" href={auditCsvUrl(query)} download="audit.csv" data-testid="audit-csv">{t("admin.audit.csv")}</a>
          )}
        </div>
      </form>
      {invalid && <p role="alert" className="error">{invalid}</p>}
      {entries.isPending && query ? (
        <Loading />
      ) : entries.isError ? (
        <ErrorBox error={entries.error} />
      ) : entries.data ? (
        <>
          <table data-testid="audit-table" className="audit">
            <caption>{t("admin.audit.caption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("admin.audit.at")}</th>
                <th scope="col">{t("admin.audit.user")}</th>
                <th scope="col">{t("admin.audit.kind")}</th>
                <th scope="col">{t("admin.audit.actionCol")}</th>
                <th scope="col">{t("admin.audit.target")}</th>
                <th scope="col">{t("admin.audit.outcome")}</th>
                <th scope="col">{t("admin.audit.details")}</th>
              </tr>
            </thead>
            <tbody>
              {entries.data.items.length === 0 && <tr><td colSpan={7} className="muted">{t("common.empty")}</td></tr>}
              {entries.data.items.map((entry) => (
                <tr key={entry.id} data-audit={entry.id} data-action={entry.action ?? ""}>
                  <td><When at={entry.at} /></td>
                  <td>{entry.user ?? "—"}{entry.role && <span className="muted"> ({entry.role})</span>}</td>
                  <td>{t(`admin.audit.kinds.${entry.kind}`)}</td>
                  <td>{entry.action ?? (entry.method ? `${entry.method} ${entry.path ?? ""}` : "—")}</td>
                  <td>{entry.target_type ? `${entry.target_type} ${entry.target_id ?? ""}` : "—"}</td>
                  <td>
                    {entry.outcome ? t(`admin.audit.outcomes.${entry.outcome}`) : "—"}
                    {entry.status && <span className="muted"> {entry.status}</span>}
                  </td>
                  <td className="changes">{changesOf(entry.before, entry.after, entry.comment)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav className="pager" aria-label="pagination">
            <button type="button" disabled={page <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>{t("admin.audit.newer")}</button>
            <span>{t("admin.audit.pageN", { page })}</span>
            <button type="button" disabled={entries.data.next_before_id === null}
                    onClick={() => entries.data.next_before_id !== null && setCursors([...cursors, entries.data.next_before_id])}>
              {t("admin.audit.older")}
            </button>
          </nav>
        </>
      ) : null}
    </section>
  );
}
