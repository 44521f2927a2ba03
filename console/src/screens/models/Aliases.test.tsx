import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { json, renderScreen, stubFetch } from "../../test/serve";
import Aliases from "./Aliases";
import type { Me, ModelDetail } from "../../api/types";
import type { AliasView } from "../../api/models";
import { bestOf, mayPromote, mayRollBack } from "../../rules/aliases";

const model = {
  model_id: "MDL-2", name: "RL-DesignOpt", app_id: "APP-1", app_name: "RL-DesignOpt", version: 2, workload_id: "WL-2",
  workload_name: "second", created_at: "2026-12-07T12:00:00Z", stored_at: "2026-12-07T12:01:00Z", size_bytes: 10,
  file_count: 1, status: "stored", store_attempts: 1, store_error: null, spec_version: "1.0.0", spec: {}, workload: {},
  run_logs: [], training_config: {}, metrics: { summary: { avg_reward: 0.8 } }, files: [], aliases: [], download: "",
} as ModelDetail;

const production: AliasView = {
  alias: "production", model_id: "MDL-1", version: 1, name: "RL-DesignOpt", moved_at: "2026-12-07T11:00:00Z",
  moved_by: "kim", history: [{ action: "move", from_model_id: null, to_model_id: "MDL-1", gate: null,
  gate_observed: null, undone: false, moved_by: "kim", moved_at: "2026-12-07T11:00:00Z" }],
};

// the App as the builder answers it: owned by kim (null: the platform's; "gone": the builder answers 404)
function serve(me: Me, moveAnswer: { status: number; body: unknown }, owner: string | null | "gone" = "kim") {
  const sent = stubFetch(({ method, url }) => {
    if (url.startsWith("/api/auth/me")) return json(me);
    if (url === "/api/models/apps/APP-1/aliases") return json({ app_id: "APP-1", aliases: [production] });
    if (url === "/api/builder/apps/APP-1") {
      return owner === "gone" ? json({ detail: "app APP-1 not found" }, 404) : json({ app_id: "APP-1", owner });
    }
    if (method === "PUT" || method === "POST") return json(moveAnswer.body, moveAnswer.status);
    return json({ detail: "unexpected" }, 500);
  });
  renderScreen(<Aliases model={model} />);
  return sent;
}

const researcher: Me = { user: "kim", display_name: "Kim", email: null, role: "researcher", via: "session", kind: "person" };

test("moving production to this model is a compare-and-set on what the screen showed; a 409 shows the service's message", async () => {
  const sent = serve(researcher, { status: 409, body: { detail: "alias production moved meanwhile: it points at MDL-3" } });
  const user = userEvent.setup();
  const move = await screen.findByRole("button", { name: "production 별칭을 v2(으)로 이동" });
  await waitFor(() => expect(move).toBeEnabled());
  // the first move has nothing before it: no rollback
  expect(screen.getByRole("button", { name: "production 별칭 롤백" })).toBeDisabled();
  expect(screen.getByText("되돌릴 이전 모델이 없습니다.")).toBeInTheDocument();
  await user.click(move);
  await screen.findByText(/moved meanwhile: it points at MDL-3/);
  expect(sent.find((s) => s.method === "PUT")).toEqual({
    method: "PUT", url: "/api/models/apps/APP-1/aliases/production", body: { model_id: "MDL-2", expected_model_id: "MDL-1" },
  });
});

test("a new alias behind a verification gate sends the gate; a bad alias name is refused before sending", async () => {
  const sent = serve(researcher, { status: 200, body: {} });
  const user = userEvent.setup();
  const form = await screen.findByRole("form", { name: "별칭 지정" });
  const name = within(form).getByLabelText("별칭 이름");
  await user.clear(name);
  await user.type(name, "Staging!");
  expect(within(form).getByRole("button", { name: "별칭 지정" })).toBeDisabled();
  await user.clear(name);
  await user.type(name, "staging");
  await user.selectOptions(within(form).getByLabelText("검증 지표"), "avg_reward");
  await user.type(within(form).getByLabelText("최솟값"), "0.5");
  await user.click(within(form).getByRole("button", { name: "별칭 지정" }));
  await waitFor(() => expect(sent.some((s) => s.method === "PUT")).toBe(true));
  expect(sent.find((s) => s.method === "PUT")?.body).toEqual({ model_id: "MDL-2", gate: { metric: "avg_reward", min: 0.5 } });
});

test("a viewer sees the aliases and their history but cannot move or roll back", async () => {
  serve({ ...researcher, user: "park", role: "viewer" }, { status: 200, body: {} });
  const row = await screen.findByRole("row", { name: /production/ });
  await waitFor(() => expect(within(row).getAllByText("뷰어는 조회만 할 수 있습니다.").length).toBe(2));
  for (const button of within(row).getAllByRole("button")) expect(button).toBeDisabled();
});

const refusal = "app APP-1 belongs to 'kim'; only its owner or an admin may change it";

test("another researcher sees every control disabled with the App's owner named, and sends nothing", async () => {
  const sent = serve({ ...researcher, user: "lee" }, { status: 403, body: { detail: refusal } });
  const row = await screen.findByRole("row", { name: /production/ });
  await waitFor(() => expect(within(row).getAllByText("소유자(kim) 또는 관리자만 할 수 있습니다.").length).toBe(2));
  for (const button of within(row).getAllByRole("button")) expect(button).toBeDisabled();
  const form = screen.getByRole("form", { name: "별칭 지정" });
  expect(within(form).getByRole("button", { name: "별칭 지정" })).toBeDisabled();
  expect(sent.some((s) => s.method !== "GET")).toBe(false);
});

test("an admin moves the aliases of anyone's App", async () => {
  const sent = serve({ ...researcher, user: "root", role: "admin" }, { status: 200, body: {} });
  const user = userEvent.setup();
  const move = await screen.findByRole("button", { name: "production 별칭을 v2(으)로 이동" });
  await waitFor(() => expect(move).toBeEnabled());
  await user.click(move);
  await waitFor(() => expect(sent.some((s) => s.method === "PUT")).toBe(true));
});

test("a platform-owned App's aliases are moved by an admin only", async () => {
  serve(researcher, { status: 200, body: {} }, null);
  const row = await screen.findByRole("row", { name: /production/ });
  await waitFor(() => expect(within(row).getAllByText("플랫폼 소유 App은 관리자만 할 수 있습니다.").length).toBe(2));
  for (const button of within(row).getAllByRole("button")) expect(button).toBeDisabled();
});

test("when the builder cannot tell the owner, the models service decides and its 403 is shown", async () => {
  serve({ ...researcher, user: "lee" }, { status: 403, body: { detail: refusal } }, "gone");
  const user = userEvent.setup();
  const move = await screen.findByRole("button", { name: "production 별칭을 v2(으)로 이동" });
  await waitFor(() => expect(move).toBeEnabled());
  await user.click(move);
  expect(await screen.findByRole("alert")).toHaveTextContent(`(403): ${refusal}`);
});

test("the rules: the App's owner or an admin; unknown to the console, the service decides", () => {
  const lee = { ...researcher, user: "lee" };
  const stored = { model_id: "MDL-2", status: "stored" };
  expect(mayPromote(researcher, stored, "production", production, { owner: "kim" })).toBeNull();
  expect(mayPromote(lee, stored, "production", production, { owner: "kim" })).toEqual(
    { reason: "why.appOwnerOrAdmin", values: { owner: "kim" } });
  expect(mayRollBack(lee, production, { owner: "kim" })).toEqual({ reason: "why.appOwnerOrAdmin", values: { owner: "kim" } });
  expect(mayPromote({ ...lee, role: "admin" }, stored, "production", production, { owner: null })).toBeNull();
  expect(mayPromote(lee, stored, "production", production, { owner: null })).toEqual({ reason: "why.platformApp" });
  expect(mayPromote(lee, stored, "production", production, undefined)).toBeNull();
  expect(mayPromote({ ...lee, role: "viewer" }, stored, "production", production, { owner: "lee" })).toEqual(
    { reason: "why.viewerReadOnly" });
});

test("rollback is offered only while the newest forward move has somewhere to go back to", () => {
  const me = researcher;
  const moved = { ...production, model_id: "MDL-2", history: [
    { ...production.history[0], from_model_id: "MDL-1", to_model_id: "MDL-2" }, production.history[0]] };
  expect(mayRollBack(me, moved)).toBeNull();
  const undone = { ...moved, history: [{ ...moved.history[0], undone: true }, production.history[0]] };
  expect(mayRollBack(me, undone)).toEqual({ reason: "why.nothingToRollBack" });
});

test("the best value of a metric: higher wins, lower for losses and times, missing values skipped", () => {
  expect(bestOf("avg_reward", { a: 0.2, b: 0.9, c: null })).toBe("b");
  expect(bestOf("final_loss", { a: 0.2, b: 0.9 })).toBe("a");
  expect(bestOf("duration_seconds", { a: null, b: null })).toBeNull();
});
