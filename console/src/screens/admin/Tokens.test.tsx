import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { json, renderScreen, stubFetch } from "../../test/serve";
import Tokens from "./Tokens";
import type { Me } from "../../api/types";
import type { TokenView } from "../../api/admin";

const SECRET = "avt_the-secret-shown-once";

function serve(me: Me) {
  const tokens: TokenView[] = [];
  const sent = stubFetch(({ method, url, body }) => {
    if (url.startsWith("/api/auth/me")) return json(me);
    if (url.startsWith("/api/users")) {
      return json({ items: [{ id: "ci-bot", kind: "service", role: "researcher", active: true }], total: 1, page: 1, page_size: 100 });
    }
    if (url.startsWith("/api/tokens") && method === "GET") return json(tokens);
    if (url === "/api/tokens" && method === "POST") {
      const owner = body.user ?? me.user;
      tokens.unshift({ id: "tok_1", user: owner, name: body.name, role: body.role ?? me.role, created_at: "2026-12-07T12:00:00Z",
                       created_by: me.user, expires_at: null, revoked_at: null, revoked_by: null, last_used_at: null });
      return json({ id: "tok_1", token: SECRET, name: body.name, role: body.role ?? me.role, user: owner, expires_at: null }, 201);
    }
    return json({ detail: "unexpected" }, 500);
  });
  renderScreen(<Tokens />);
  return sent;
}

const researcher: Me = { user: "kim", display_name: "Kim", email: null, role: "researcher", via: "session", kind: "person" };

test("a new token's secret is shown once with a copy button, never in the list, and gone once hidden", async () => {
  const sent = serve(researcher);
  const user = userEvent.setup();
  const writeText = vi.fn().mockResolvedValue(undefined);
  Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
  await screen.findByRole("heading", { name: "내 API 토큰" });
  expect(screen.queryByLabelText("토큰 주인")).not.toBeInTheDocument(); // a researcher: only their own
  await user.type(screen.getByLabelText("이름"), "ci");
  await user.click(screen.getByRole("button", { name: "토큰 만들기" }));

  const box = await screen.findByTestId("created-token");
  expect(within(box).getByTestId("token-secret")).toHaveValue(SECRET);
  expect(sent.find((s) => s.method === "POST")?.body).toEqual({ name: "ci", role: null, expires_in_days: null, user: null });
  const table = await screen.findByTestId("tokens-table");
  await within(table).findByText("ci");
  expect(table.textContent).not.toContain(SECRET);

  await user.click(within(box).getByRole("button", { name: "복사" }));
  expect(writeText).toHaveBeenCalledWith(SECRET);
  await within(box).findByText("복사했습니다.");

  await user.click(within(box).getByRole("button", { name: "복사했습니다, 숨기기" }));
  await waitFor(() => expect(screen.queryByTestId("created-token")).not.toBeInTheDocument());
  expect(document.body.innerHTML).not.toContain(SECRET);
});

test("an admin makes a service account's token; a failed copy says to select the value", async () => {
  const sent = serve({ ...researcher, user: "admin", role: "admin" });
  const user = userEvent.setup();
  Object.defineProperty(navigator, "clipboard", { value: { writeText: vi.fn().mockRejectedValue(new Error("denied")) }, configurable: true });
  const owner = await screen.findByLabelText("토큰 주인");
  await waitFor(() => expect(within(owner).getByRole("option", { name: "ci-bot" })).toBeInTheDocument());
  await user.selectOptions(owner, "ci-bot");
  await user.type(screen.getByLabelText("이름"), "deploy");
  await user.selectOptions(screen.getByLabelText("역할"), "viewer");
  await user.click(screen.getByRole("button", { name: "토큰 만들기" }));
  const box = await screen.findByTestId("created-token");
  expect(sent.find((s) => s.method === "POST")?.body).toEqual({ name: "deploy", role: "viewer", expires_in_days: null, user: "ci-bot" });
  expect(sent.some((s) => s.method === "GET" && s.url.includes("user=ci-bot"))).toBe(true);
  await user.click(within(box).getByRole("button", { name: "복사" }));
  await within(box).findByText(/복사하지 못했습니다/);
});
