// The frame of every screen once logged in: navigation, the user menu with the role, the language, the
// live-events connection (and a banner while it is lost).
import { Suspense } from "react";
import { NavLink, Navigate, Outlet, useLocation, useNavigate } from "react-router";
import { useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { ApiError, post, setCsrfToken } from "../api/client";
import { ME_KEY, useMe } from "../auth/session";
import { useLiveEvents } from "../live/useLiveEvents";
import { ErrorBox, Loading } from "./common";
import { LANGUAGES } from "../i18n";

export default function Shell() {
  const { t, i18n } = useTranslation();
  const me = useMe();
  const client = useQueryClient();
  const navigate = useNavigate();
  const location = useLocation();
  const live = useLiveEvents(client, {
    enabled: me.isSuccess,
    onUnauthorized: () => void client.invalidateQueries({ queryKey: ME_KEY }),
  });

  if (me.isPending) return <Loading />;
  if (me.error instanceof ApiError && me.error.status === 401) {
    const next = location.pathname + location.search;
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />;
  }
  if (me.isError) return <ErrorBox error={me.error} />;

  const logout = async () => {
    try {
      await post("/api/auth/logout");
    } finally {
      setCsrfToken(null);
      client.clear();
      navigate("/login", { replace: true });
    }
  };

  return (
    <div className="shell">
      <a href="#main" className="skip">
        {t("app.skip")}
      </a>
      <header className="top">
        <span className="brand">{t("app.title")}</span>
        <nav aria-label={t("nav.main")}>
          <ul>
            <li><NavLink to="/builder">{t("nav.builder")}</NavLink></li>
            <li><NavLink to="/library">{t("nav.library")}</NavLink></li>
            <li><NavLink to="/trainer">{t("nav.trainer")}</NavLink></li>
            <li><NavLink to="/approvals">{t("nav.approvals")}</NavLink></li>
            <li><NavLink to="/queue">{t("nav.queue")}</NavLink></li>
            <li><NavLink to="/runs">{t("runs.title")}</NavLink></li>
            <li><NavLink to="/resources">{t("nav.resources")}</NavLink></li>
            <li><NavLink to="/models">{t("nav.models")}</NavLink></li>
            {me.data.role === "admin" && <li><NavLink to="/admin">{t("nav.admin")}</NavLink></li>}
          </ul>
        </nav>
        <span className={`live live-${live}`} role="status" aria-live="polite" data-live={live}>
          {t(`live.${live}`)}
        </span>
        <section className="user" aria-label={t("user.menu")}>
          <span data-testid="user">{me.data.display_name}</span>{" "}
          <span className="badge role" data-testid="role" data-role={me.data.role}>
            {t(`role.${me.data.role}`)}
          </span>
          {/* everyone's own API tokens (the admin area's one screen that is not admins' only) */}
          <NavLink to="/admin/tokens" className="tokens-link">{t("admin.myTokens")}</NavLink>
          <label>
            <span className="sr-only">{t("user.language")}</span>
            <select value={i18n.language} onChange={(e) => void i18n.changeLanguage(e.target.value)}>
              {LANGUAGES.map((language) => (
                <option key={language} value={language}>
                  {language === "ko" ? "한국어" : "English"}
                </option>
              ))}
            </select>
          </label>
          <button type="button" onClick={() => void logout()}>
            {t("user.logout")}
          </button>
        </section>
      </header>
      {live === "lost" && (
        <div className="banner" role="alert" data-testid="live-lost">
          {t("live.lost")}
        </div>
      )}
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading />}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}
