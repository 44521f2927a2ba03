import { render, screen } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter } from "react-router";
import Login, { safeNext } from "./Login";

function renderLogin(providers: unknown, at = "/login?next=%2Fapprovals%2FWL-1") {
  globalThis.fetch = (async () =>
    new Response(JSON.stringify(providers), { status: 200, headers: { "content-type": "application/json" } })) as typeof fetch;
  render(
    <QueryClientProvider client={new QueryClient()}>
      <MemoryRouter initialEntries={[at]}>
        <Login />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

test("single sign-on is offered when the gateway says so, and comes back to where the user was going", async () => {
  renderLogin({ local: true, oidc: { name: "Keycloak", login_url: "/api/auth/oidc/login" } });
  const link = await screen.findByRole("link", { name: "Keycloak(으)로 로그인" });
  expect(link).toHaveAttribute("href", "/api/auth/oidc/login?next=%2Fapprovals%2FWL-1");
  expect(screen.getByLabelText("사용자 ID")).toBeRequired();
});

test("no single sign-on button without OIDC; `next` never leaves the site", async () => {
  renderLogin({ local: true, oidc: null });
  await screen.findByRole("button", { name: "로그인" });
  expect(screen.queryByRole("link")).toBeNull();
  expect(safeNext("//evil.example/x")).toBe("/queue");
  expect(safeNext("https://evil.example")).toBe("/queue");
  expect(safeNext("/login?next=/x")).toBe("/queue");
  expect(safeNext("/models/M-1")).toBe("/models/M-1");
});
