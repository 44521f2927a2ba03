// The one way the console talks to the gateway: same-origin fetch with the session cookie, the CSRF
// token on every change, and the service's own message (`detail`) when something is refused.

export const CSRF_COOKIE = "avatar_csrf";
export const CSRF_HEADER = "X-CSRF-Token";
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let csrfToken: string | null = null;

/** Login answers the token; it is also in the readable cookie, which survives a reload. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export function readCookie(name: string, cookies: string = document.cookie): string | null {
  for (const part of cookies.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

export function csrf(): string | null {
  return readCookie(CSRF_COOKIE) ?? csrfToken;
}

/** The human message of an error answer: FastAPI's `detail` (a string, or a list of field errors). */
export function messageOf(status: number, body: unknown): string {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => {
          if (item && typeof item === "object") {
            const loc = Array.isArray(item.loc) ? item.loc.filter((p: unknown) => p !== "body").join(".") : "";
            return loc ? `${loc}: ${item.msg}` : String(item.msg);
          }
          return String(item);
        })
        .join("; ");
    }
    if (detail && typeof detail === "object" && "message" in detail) return String((detail as { message: unknown }).message);
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 500);
  return `HTTP ${status}`;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  query?: Query,
  extraHeaders?: Record<string, string>, // e.g. If-Match for the builder's optimistic concurrency
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE.has(method)) {
    const token = csrf();
    if (token) headers[CSRF_HEADER] = token;
  }
  const response = await fetch(withQuery(path, query), {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = response.headers.get("content-type") ?? "";
  const payload: unknown =
    response.status === 204 ? null : type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) throw new ApiError(response.status, messageOf(response.status, payload), payload);
  return payload as T;
}

export const get = <T>(path: string, query?: Query) => api<T>("GET", path, undefined, query);
export const post = <T>(path: string, body?: unknown) => api<T>("POST", path, body);
export const patch = <T>(path: string, body?: unknown) => api<T>("PATCH", path, body);
