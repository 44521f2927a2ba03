// The admin screens: their own routes under /admin (App.tsx mounts this lazily as one chunk). Users, the
// audit log and the thresholds are an admin's; API tokens are everyone's own (/admin/tokens, also linked
// from the user menu), with an admin also managing the service accounts' tokens there.
import type { ReactNode } from "react";
import { Link, Navigate, NavLink, Outlet, Route, Routes } from "react-router";
import { useTranslation } from "react-i18next";
import { useMe } from "../../auth/session";
import { Loading } from "../../components/common";
import Audit from "./Audit";
import Thresholds from "./Thresholds";
import Tokens from "./Tokens";
import Users from "./Users";

function Layout() {
  const { t } = useTranslation();
  const isAdmin = useMe().data?.role === "admin";
  return (
    <div className="admin">
      <nav aria-label={t("admin.nav")} className="subnav">
        <ul>
          {isAdmin && <li><NavLink to="/admin/users">{t("admin.users.title")}</NavLink></li>}
          <li><NavLink to="/admin/tokens">{isAdmin ? t("admin.tokens.title") : t("admin.myTokens")}</NavLink></li>
          {isAdmin && <li><NavLink to="/admin/audit">{t("admin.audit.title")}</NavLink></li>}
          {isAdmin && <li><NavLink to="/admin/thresholds">{t("admin.thresholds.title")}</NavLink></li>}
        </ul>
      </nav>
      <Outlet />
    </div>
  );
}

/** an admin's screen: anyone else reads why not, and where their own tokens are */
function AdminOnly({ children }: { children: ReactNode }) {
  const { t } = useTranslation();
  const me = useMe();
  if (me.isPending) return <Loading />;
  if (me.data?.role === "admin") return <>{children}</>;
  return (
    <section aria-labelledby="admin-only-title">
      <h1 id="admin-only-title">{t("admin.title")}</h1>
      <p className="warning" role="note" data-testid="admin-only">{t("admin.adminOnly")}</p>
      <p>{t("admin.adminOnlyHint")} <Link to="/admin/tokens">{t("admin.myTokens")}</Link></p>
    </section>
  );
}

export default function AdminRoutes() {
  return (
    <Routes>
      <Route element={<Layout />}>
        <Route index element={<AdminOnly><Navigate to="/admin/users" replace /></AdminOnly>} />
        <Route path="users" element={<AdminOnly><Users /></AdminOnly>} />
        <Route path="tokens" element={<Tokens />} />
        <Route path="audit" element={<AdminOnly><Audit /></AdminOnly>} />
        <Route path="thresholds" element={<AdminOnly><Thresholds /></AdminOnly>} />
        <Route path="*" element={<Navigate to="/admin" replace />} />
      </Route>
    </Routes>
  );
}
