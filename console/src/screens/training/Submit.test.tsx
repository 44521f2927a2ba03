import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter, Route, Routes } from "react-router";
import Submit from "./Submit";
import type { Me } from "../../api/types";

// the parts of the merged OpenAPI document the form reads (as services/trainer/schemas.py and the
// builder's TrainingConfig answer them)
const range = (extra: object) => ({ anyOf: [{ type: "integer", ...extra }, { type: "null" }] });
const OPENAPI = {
  components: {
    schemas: {
      "trainer.SubmitTraining": {
        properties: { name: { type: "string", maxLength: 128 }, priority: { type: "string", enum: ["high", "normal", "low"], default: "normal" } },
      },
      "trainer.ResourceRequest": {
        properties: {
          gpu_type: { type: "string", maxLength: 64 }, gpu_count: { type: "integer", minimum: 0, maximum: 1024 },
          memory: { type: "string" }, cpu: { anyOf: [{ type: "number", exclusiveMinimum: 0, maximum: 4096 }, { type: "null" }] },
          max_runtime: { type: "string", default: "2h" },
        },
      },
      "trainer.TrainingParams": {
        properties: {
          episodes: range({ minimum: 1, maximum: 10000000 }), batch_size: range({ minimum: 1, maximum: 1000000 }),
          max_steps_per_episode: range({ minimum: 1, maximum: 10000000 }),
          learning_rate: { anyOf: [{ type: "number", exclusiveMinimum: 0, maximum: 10 }, { type: "null" }] },
          gamma: { anyOf: [{ type: "number", exclusiveMinimum: 0, maximum: 1 }, { type: "null" }] },
          simulation_seed: range({ minimum: 0, maximum: 4294967295 }),
        },
      },
      "builder.TrainingConfig": {
        properties: {
          episodes: { type: "integer", default: 1000 }, learning_rate: { type: "number", default: 0.001 },
          batch_size: { type: "integer", default: 64 }, gamma: { type: "number", default: 0.99 },
          max_steps_per_episode: { type: "integer", default: 500 },
        },
      },
    },
  },
};
const APP = {
  app_id: "APP-990E96", name: "RL-DesignOpt-v1", version: "1.0.0", status: "ready", task_count: 2, component_count: 5,
  largest: null, version_count: 1, versions: ["1.0.0"],
};
const DEFAULTS = {
  app_id: "APP-990E96", spec_version: "1.0.0", gpu_type: "A100", gpu_count: 4, memory: "128GB", cpu: null, max_runtime: "2h",
  source_component: { component_id: "CL-REF-002", name: "rl-agent" },
  training_config: { episodes: 1000, learning_rate: 0.001, batch_size: 64, gamma: 0.99, max_steps_per_episode: 500, env_config: {}, reward_params: {} },
};

function serve(me: Me, refusals: unknown[] = []) {
  const sent: unknown[] = [];
  globalThis.fetch = (async (url: string, init: RequestInit = {}) => {
    const json = (body: unknown, status = 200) =>
      new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
    if (url.startsWith("/api/auth/me")) return json(me);
    if (url.startsWith("/api/openapi.json")) return json(OPENAPI);
    if (url.startsWith("/api/trainer/apps?")) return json({ items: [APP], total: 1, page: 1, page_size: 100 });
    if (url.startsWith("/api/trainer/apps/APP-990E96/resource-defaults")) return json(DEFAULTS);
    if (url.startsWith("/api/trainer/apps/APP-990E96")) return json(APP);
    if (url === "/api/trainer/training-requests" && init.method === "POST") {
      sent.push(JSON.parse(String(init.body)));
      const refusal = refusals.shift();
      if (refusal) return json(refusal, 422);
      return json({ workload_id: "WL-NEW00001", status: "waiting", submitted_at: "2026-12-07T12:00:00Z" }, 202);
    }
    return json({ detail: `unexpected ${url}` }, 500);
  }) as typeof fetch;
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={["/trainer/new?app=APP-990E96"]}>
        <Routes>
          <Route path="/trainer/new" element={<Submit />} />
          <Route path="/trainer/:id" element={<p>detail page</p>} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return sent;
}

const kim: Me = { user: "kim", display_name: "Kim", email: null, role: "researcher", via: "session", kind: "person" };

test("the form is filled from the App, shows the service's messages at their fields, and submits what it shows", async () => {
  const sent = serve(kim, [
    {
      detail: [
        { type: "greater_than_equal", loc: ["body", "training_config", "episodes"], msg: "Input should be greater than or equal to 1" },
        { type: "value_error", loc: ["body", "resources", "memory"], msg: "Value error, invalid memory value 'lots': expected a number and a unit, e.g. '64GB'" },
      ],
    },
  ]);
  const user = userEvent.setup();
  const episodes = await screen.findByLabelText("에피소드 수 (episodes)");
  // defaults: resources from the largest component, RL parameters from the App (the seed's §4.2 values)
  await waitFor(() => expect(episodes).toHaveValue(1000));
  expect(screen.getByLabelText("GPU 수")).toHaveValue(4);
  expect(screen.getByLabelText("메모리")).toHaveValue("128GB");
  expect(screen.getByLabelText("감가율 (gamma)")).toHaveValue(0.99);
  expect(screen.getByTestId("resources-source")).toHaveTextContent("rl-agent (CL-REF-002)");
  // limits from the schema: as input attributes and as a hint beside the field
  expect(episodes).toHaveAttribute("min", "1");
  expect(episodes).toHaveAttribute("max", "10000000");
  expect(screen.getByText("1 ≤ x ≤ 10000000 · 기본값 1000")).toBeInTheDocument();

  await user.clear(episodes);
  await user.type(episodes, "0");
  await user.clear(screen.getByLabelText("메모리"));
  await user.type(screen.getByLabelText("메모리"), "lots");
  await user.click(screen.getByRole("button", { name: "학습 요청 제출" }));
  // each message at the field it names, tied to it for assistive technology
  await waitFor(() => expect(episodes).toHaveAttribute("aria-invalid", "true"));
  expect(episodes).toHaveAccessibleDescription(/greater than or equal to 1/);
  expect(screen.getByLabelText("메모리")).toHaveAccessibleDescription(/invalid memory value 'lots'/);
  expect(screen.getByLabelText("GPU 수")).not.toHaveAttribute("aria-invalid");

  await user.clear(episodes);
  await user.type(episodes, "20");
  await user.clear(screen.getByLabelText("메모리"));
  await user.type(screen.getByLabelText("메모리"), "128GB");
  await user.selectOptions(screen.getByLabelText("우선순위"), "high");
  await user.click(screen.getByRole("button", { name: "학습 요청 제출" }));
  await screen.findByText("detail page");
  expect(sent[1]).toEqual({
    app_id: "APP-990E96", spec_version: "1.0.0", priority: "high",
    resources: { gpu_type: "A100", gpu_count: 4, memory: "128GB", max_runtime: "2h" },
    training_config: { episodes: 20, learning_rate: 0.001, batch_size: 64, gamma: 0.99, max_steps_per_episode: 500, env_config: {}, reward_params: {} },
  });
});

test("a domain refusal lands at the field its message names", async () => {
  serve(kim, [{ detail: { code: "envelope_too_small", message: "gpu_count 2 is below the 4 GPUs component 'rl-agent' (CL-REF-002) needs" } }]);
  const user = userEvent.setup();
  const count = await screen.findByLabelText("GPU 수");
  await waitFor(() => expect(count).toHaveValue(4));
  await user.clear(count);
  await user.type(count, "2");
  await user.click(screen.getByRole("button", { name: "학습 요청 제출" }));
  await waitFor(() => expect(count).toHaveAccessibleDescription(/is below the 4 GPUs/));
});

test("a viewer sees the form disabled with the reason", async () => {
  serve({ ...kim, role: "viewer" });
  expect(await screen.findByTestId("form-disabled-reason")).toHaveTextContent("뷰어는 조회만 할 수 있습니다.");
  await waitFor(() => expect(screen.getByLabelText("에피소드 수 (episodes)")).toHaveValue(1000));
  expect(screen.getByLabelText("에피소드 수 (episodes)")).toBeDisabled();
  expect(screen.getByRole("button", { name: "학습 요청 제출" })).toBeDisabled();
});
