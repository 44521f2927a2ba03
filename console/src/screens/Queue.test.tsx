import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { json, renderScreen, stubFetch } from "../test/serve";
import Queue from "./Queue";
import type { Me, QueueItem } from "../api/types";

function item(id: string, position: number, priority: QueueItem["priority"] = "normal"): QueueItem {
  return {
    position, workload_id: id, job_id: id, kind: "workload", test_run_id: null, name: `job ${id}`, priority,
    resources: { gpu_type: "A100", gpu_count: 2, memory: "64GB" }, requester: "kim",
    submitted_at: "2026-12-07T12:00:00Z", status: "waiting",
    wait_reason: { code: "gpus", text: "한 노드에 A100 2개 필요 · 여유 1개", gpu_type: "A100", gpu_count: 2, gpus_free: 1 },
    estimated_start: null,
  };
}

function serve(me: Me) {
  const sent = stubFetch(({ method, url }) => {
    if (url.startsWith("/api/auth/me")) return json(me);
    if (url.startsWith("/api/scheduler/queue?")) return json({ items: [item("A", 1, "high"), item("B", 2), item("C", 3)], count: 3 });
    if (url.startsWith("/api/scheduler/workloads")) return json({ items: [], count: 0 });
    if (method === "PATCH") return json({ detail: "workload A is no longer waiting" }, 409);
    return json({ detail: "unexpected" }, 500);
  });
  renderScreen(<Queue />);
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

test("an admin drags a row onto another to reorder; each row says why it waits", async () => {
  const sent = serve(admin);
  const table = await screen.findByTestId("queue-table");
  const row = (id: string) => table.querySelector(`[data-workload="${id}"]`)!;
  await waitFor(() => expect(row("C")).toHaveAttribute("draggable", "true"));
  expect(within(row("A") as HTMLElement).getByTestId("wait-reason").textContent).toBe("한 노드에 A100 2개 필요 · 여유 1개");
  expect(within(row("A") as HTMLElement).getByTestId("estimated-start").textContent).toBe("알 수 없음");
  const data = { effectAllowed: "", setData: () => {} };
  fireEvent.dragStart(row("C"), { dataTransfer: data });
  fireEvent.dragOver(row("A"), { dataTransfer: data });
  fireEvent.drop(row("A"), { dataTransfer: data });
  await waitFor(() => expect(sent.find((s) => s.method === "PATCH")).toEqual({ method: "PATCH", url: "/api/scheduler/queue/C", body: { before: "A" } }));
});
