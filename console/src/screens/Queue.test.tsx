import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter } from "react-router";
import Queue from "./Queue";
import type { Me, QueueItem } from "../api/types";

function item(id: string, position: number, priority: QueueItem["priority"] = "normal"): QueueItem {
  return {
    position, workload_id: id, job_id: id, kind: "workload", test_run_id: null, name: `job ${id}`, priority,
    resources: { gpu_type: "A100", gpu_count: 2, memory: "64GB" }, requester: "kim",
    submitted_at: "2026-12-07T12:00:00Z", status: "waiting",
  };
}

function serve(me: Me) {
  const sent: { method: string; url: string; body: unknown }[] = [];
  globalThis.fetch = (async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? "GET";
    sent.push({ method, url, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const json = (body: unknown, status = 200) =>
      new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
    if (url.startsWith("/api/auth/me")) return json(me);
    if (url.startsWith("/api/scheduler/queue?")) return json({ items: [item("A", 1, "high"), item("B", 2), item("C", 3)], count: 3 });
    if (url.startsWith("/api/scheduler/workloads")) return json({ items: [], count: 0 });
    if (method === "PATCH") return json({ detail: "workload A is no longer waiting" }, 409);
    return json({ detail: "unexpected" }, 500);
  }) as typeof fetch;
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <Queue />
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return sent;
}

const admin: Me = { user: "admin", display_name: "Admin", email: null, role: "admin", via: "session", kind: "person" };

test("an admin moves a waiting workload and changes its priority; a refusal shows the service's message", async () => {
  const sent = serve(admin);
  const user = userEvent.setup();
  const first = await screen.findByRole("button", { name: "job A 아래로 이동" });
  await waitFor(() => expect(first).toBeEnabled());
  expect(screen.getByRole("button", { name: "job A 위로 이동" })).toBeDisabled(); // already first
  await user.click(first);
  await screen.findByText(/workload A is no longer waiting/);
  expect(sent.find((s) => s.method === "PATCH")).toEqual({ method: "PATCH", url: "/api/scheduler/queue/A", body: { after: "B" } });
  await user.selectOptions(screen.getByLabelText("job C 우선순위"), "high");
  await waitFor(() => expect(sent.filter((s) => s.method === "PATCH")).toHaveLength(2));
  expect(sent.filter((s) => s.method === "PATCH")[1].body).toEqual({ priority: "high" });
});

test("a viewer sees the queue but every control is disabled with the reason", async () => {
  serve({ ...admin, user: "park", role: "viewer" });
  const table = await screen.findByTestId("queue-table");
  await within(table).findByText("job B");
  await waitFor(() => expect(within(table).getAllByText("관리자만 할 수 있습니다.").length).toBeGreaterThan(0));
  expect(within(table).queryAllByRole("combobox")).toHaveLength(0);
  for (const button of within(table).getAllByRole("button")) expect(button).toBeDisabled();
  expect(within(table).getAllByText("뷰어는 조회만 할 수 있습니다.")).toHaveLength(3); // cancel, one per row
  expect(within(table).getByText("높음")).toBeInTheDocument();
});
