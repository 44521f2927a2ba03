import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import NodesTable from "./NodesTable";
import type { NodeView } from "../../api/resources";
import type { Role } from "../../api/types";

function node(name: string, status: NodeView["status"]): NodeView {
  const memory = { total_bytes: 1024e9, allocated_bytes: 64e9, used_bytes: null, idle_bytes: 960e9, total: "1024GB", allocated: "64GB", used: null, idle: "960GB" };
  return { name, status, observed_status: "Active", override: status === "Active" ? null : status,
           gpus: { A100: { total: 8, allocated: 2, used: null, idle: 6, memory_per_gpu_bytes: 80e9, memory_per_gpu: "80GB" } },
           memory, cpu: { total: 64, allocated: 4, used: null, idle: 60 }, allocations: 1 };
}

function show(role: Role) {
  const sent: { url: string; body: unknown }[] = [];
  globalThis.fetch = (async (url: string, init: RequestInit = {}) => {
    const body = JSON.parse(String(init.body));
    sent.push({ url, body });
    return new Response(JSON.stringify(node("node-a", body.status)), { status: 200, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  render(
    <QueryClientProvider client={new QueryClient()}>
      <NodesTable nodes={[node("node-a", "Active"), node("node-b", "Drain")]} role={role} />
    </QueryClientProvider>,
  );
  return sent;
}

test("an admin drains an Active node (after confirming) and activates a drained one", async () => {
  const sent = show("admin");
  const user = userEvent.setup();
  window.confirm = () => true;
  expect(within(screen.getByRole("row", { name: /node-a/ })).getByText("A100 2 / 8")).toBeInTheDocument();
  await user.click(screen.getByRole("button", { name: "node-a 드레인" }));
  await waitFor(() => expect(sent).toEqual([{ url: "/api/scheduler/nodes/node-a", body: { status: "Drain" } }]));
  await screen.findByText("node-a: Drain");
  await user.click(screen.getByRole("button", { name: "node-b 활성화" }));
  await waitFor(() => expect(sent[1]).toEqual({ url: "/api/scheduler/nodes/node-b", body: { status: "Active" } }));
});

test("a researcher sees the node controls disabled with the reason", () => {
  show("researcher");
  const row = screen.getByRole("row", { name: /node-a/ });
  expect(within(row).getByRole("button", { name: "node-a 드레인" })).toBeDisabled();
  expect(within(row).getByText("관리자만 할 수 있습니다.")).toBeInTheDocument();
});
