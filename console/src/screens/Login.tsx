import { useState, type FormEvent } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { get, post, setCsrfToken } from "../api/client";
import type { LoggedIn, Providers } from "../api/types";
import { ErrorBox } from "../components/common";
import { ME_KEY } from "../auth/session";

/** only a path of this site: never send someone on to another origin after logging in */
export function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login") ? next : "/queue";
}

export default function Login() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const providers = useQuery({ queryKey: ["providers"], queryFn: () => get<Providers>("/api/auth/providers") });
  const next = safeNext(params.get("next"));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await post<LoggedIn>("/api/auth/login", { user, password });
      setCsrfToken(answer.csrf_token);
      client.clear();
      await client.invalidateQueries({ queryKey: ME_KEY });
      navigate(next, { replace: true });
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const oidc = providers.data?.oidc;
  return (
    <main className="login" id="main">
      <h1>{t("app.title")}</h1>
      <form onSubmit={submit} aria-labelledby="login-title">
        <h2 id="login-title">{t("login.title")}</h2>
        <label>
          {t("login.user")}
          <input name="user" autoComplete="username" required value={user} onChange={(e) => setUser(e.target.value)} />
        </label>
        <label>
          {t("login.password")}
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {t("login.submit")}
        </button>
        {oidc && (
          <>
            <p className="muted">{t("login.or")}</p>
            <a className="button" href={`${oidc.login_url}?next=${encodeURIComponent(next)}`}>
              {t("login.oidc", { name: oidc.name })}
            </a>
          </>
        )}
      </form>
    </main>
  );
}
