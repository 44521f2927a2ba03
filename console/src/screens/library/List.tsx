// CL-02: the component library, searched and filtered by the server (name/description, type, owner).
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { COMPONENT_TYPES, library, libraryKeys } from "../../api/library";
import { useMe } from "../../auth/session";
import { ErrorBox, GuardedButton, Loading, Pager, ResourceText, When } from "../../components/common";
import { mayRegister } from "./rules";
import { useDebounced } from "./useDebounced";

const PAGE_SIZE = 20;

export default function LibraryList() {
  const { t } = useTranslation();
  const me = useMe().data;
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const type = params.get("type") ?? "";
  const owner = params.get("owner") ?? "";
  const page = Number(params.get("page") ?? "1") || 1;
  const [text, setText] = useState(params.get("q") ?? "");
  const q = useDebounced(text.trim());
  const query = { q, type, owner, page, page_size: PAGE_SIZE };
  const components = useQuery({
    queryKey: libraryKeys.search(query),
    queryFn: () => library.search(query),
    placeholderData: (previous) => previous,
  });
  const set = (next: Record<string, string>) => {
    const merged = { ...Object.fromEntries(params), ...next };
    setParams(Object.fromEntries(Object.entries(merged).filter(([, v]) => v)));
  };

  return (
    <section aria-labelledby="library-title">
      <h1 id="library-title">{t("library.title")}</h1>
      <div className="toolbar">
        <GuardedButton verdict={mayRegister(me)} className="primary" onClick={() => navigate("/library/new")}>
          {t("library.register")}
        </GuardedButton>
      </div>
      <form className="filters" role="search" aria-label={t("library.filters")} onSubmit={(e) => e.preventDefault()}>
        <span className="filter">
          <label htmlFor="library-q">{t("library.search")}</label>
          <input
            id="library-q"
            type="search"
            value={text}
            maxLength={100}
            placeholder={t("library.searchHint")}
            onChange={(e) => {
              setText(e.target.value);
              set({ q: e.target.value.trim(), page: "" });
            }}
          />
        </span>
        <span className="filter">
          <label htmlFor="library-type">{t("library.type")}</label>
          <select id="library-type" value={type} onChange={(e) => set({ type: e.target.value, page: "" })}>
            <option value="">{t("library.allTypes")}</option>
            {COMPONENT_TYPES.map((value) => (
              <option key={value} value={value}>{t(`library.types.${value}`)}</option>
            ))}
          </select>
        </span>
        <span className="filter">
          <label htmlFor="library-owner">{t("library.owner")}</label>
          <select id="library-owner" value={owner} onChange={(e) => set({ owner: e.target.value, page: "" })}>
            <option value="">{t("library.anyOwner")}</option>
            <option value="me">{t("library.mine")}</option>
          </select>
        </span>
      </form>
      {components.isPending ? (
        <Loading />
      ) : components.isError ? (
        <ErrorBox error={components.error} />
      ) : (
        <>
          <table data-testid="library-table" aria-busy={components.isFetching}>
            <caption>{t("library.caption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("library.name")}</th>
                <th scope="col">{t("library.type")}</th>
                <th scope="col">{t("library.version")}</th>
                <th scope="col">{t("library.image")}</th>
                <th scope="col">{t("library.resources")}</th>
                <th scope="col">{t("library.owner")}</th>
                <th scope="col">{t("library.usedIn")}</th>
                <th scope="col">{t("library.updated")}</th>
              </tr>
            </thead>
            <tbody>
              {components.data.items.length === 0 && (
                <tr><td colSpan={8} className="muted">{t("common.empty")}</td></tr>
              )}
              {components.data.items.map((c) => (
                <tr key={c.component_id} data-component={c.component_id}>
                  <td>
                    <Link to={`/library/${encodeURIComponent(c.component_id)}`}>{c.name}</Link>
                    <div className="muted small">{c.component_id}</div>
                  </td>
                  <td><span className="badge">{t(`library.types.${c.type}`, { defaultValue: c.type })}</span></td>
                  <td>{c.version}</td>
                  <td><code>{c.image.registry}:{c.image.tag}</code></td>
                  <td><ResourceText resources={c.resources} /></td>
                  <td>{c.owner ?? <span className="muted">{t("library.platform")}</span>}</td>
                  <td>{t("library.usedInCount", { count: c.used_in_count })}</td>
                  <td><When at={c.updated_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} total={components.data.total} onPage={(p) => set({ page: String(p) })} />
        </>
      )}
    </section>
  );
}
