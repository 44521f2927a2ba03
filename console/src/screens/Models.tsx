// MD-02 / MD-04: the seed's §8.1 list (name, workload, created, size, status, view | download).
import { useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get } from "../api/client";
import type { ModelSummary, Page } from "../api/types";
import { ErrorBox, formatBytes, Loading, Pager, StatusBadge, When } from "../components/common";

const PAGE_SIZE = 20;

export function downloadUrl(modelId: string): string {
  return `/api/models/models/${encodeURIComponent(modelId)}/download`;
}

export default function Models() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const page = Number(params.get("page") ?? "1") || 1;
  const [draft, setDraft] = useState(q);
  const models = useQuery({
    queryKey: ["models", "list", { q, page }],
    queryFn: () => get<Page<ModelSummary>>("/api/models/models", { q, page, page_size: PAGE_SIZE }),
    placeholderData: (previous) => previous,
  });

  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">{t("models.title")}</h1>
      <form
        role="search"
        className="filter"
        onSubmit={(e) => {
          e.preventDefault();
          setParams(draft ? { q: draft } : {});
        }}
      >
        <label>
          {t("models.search")} <input type="search" value={draft} onChange={(e) => setDraft(e.target.value)} />
        </label>
        <button type="submit">{t("models.search")}</button>
      </form>
      {models.isPending ? (
        <Loading />
      ) : models.isError ? (
        <ErrorBox error={models.error} />
      ) : (
        <>
          <table data-testid="models-table">
            <caption>{t("models.caption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("models.name")}</th>
                <th scope="col">{t("models.workload")}</th>
                <th scope="col">{t("models.created")}</th>
                <th scope="col">{t("models.size")}</th>
                <th scope="col">{t("models.status")}</th>
                <th scope="col">{t("models.actions")}</th>
              </tr>
            </thead>
            <tbody>
              {models.data.items.length === 0 && (
                <tr><td colSpan={6} className="muted">{t("common.empty")}</td></tr>
              )}
              {models.data.items.map((m) => (
                <tr key={m.model_id} data-model={m.model_id} data-workload={m.workload_id}>
                  <td>{m.name} <span className="muted">v{m.version}</span></td>
                  <td><Link to={`/trainer/${encodeURIComponent(m.workload_id)}`}>{m.workload_name || m.workload_id}</Link></td>
                  <td><When at={m.created_at} /></td>
                  <td>{formatBytes(m.size_bytes)}</td>
                  <td><StatusBadge status={m.status} /></td>
                  <td className="actions">
                    <Link to={`/models/${encodeURIComponent(m.model_id)}`} aria-label={`${t("common.view")} ${m.name}`}>{t("common.view")}</Link>
                    {" | "}
                    {m.status === "stored" ? (
                      <a href={downloadUrl(m.model_id)} download aria-label={`${t("common.download")} ${m.name}`}>{t("common.download")}</a>
                    ) : (
                      <span className="muted" title={t("why.notStored")}>{t("common.download")}</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} total={models.data.total} onPage={(p) => setParams({ ...Object.fromEntries(params), page: String(p) })} />
        </>
      )}
    </section>
  );
}
