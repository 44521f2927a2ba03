import { render, screen, waitFor, within } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter } from "react-router";
import i18n from "../../i18n";
import { EstimatedStart, WaitReasonText } from "../../components/WaitReason";
import { pagesFor, usePagedTable, VirtualTable } from "../../components/VirtualTable";
import { layers, taskDags } from "./dag";
import type { ComponentRun } from "../../api/runs";

function wrap(ui: React.ReactNode) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={client}><MemoryRouter>{ui}</MemoryRouter></QueryClientProvider>);
}

test("a wait reason is written from its code and figures, in the console's language", async () => {
  const { rerender } = render(<WaitReasonText reason={{ code: "gpus", text: "서버 문구", gpu_type: "A100", gpu_count: 4, gpus_free: 2 }} />);
  expect(screen.getByText("한 노드에 A100 4개 필요 · 여유 2개")).toHaveAttribute("data-code", "gpus");
  rerender(<WaitReasonText reason={{ code: "behind", text: "", ahead: 3 }} />);
  expect(screen.getByText("앞선 대기 작업 3건이 먼저 자원을 씁니다")).toBeInTheDocument();
  rerender(<WaitReasonText reason={{ code: "nodes_unavailable", text: "", gpu_type: "any", gpu_count: 2, nodes: ["n1", "n2"] }} />);
  expect(screen.getByText("GPU 2개 (종류 무관)를 둘 수 있는 노드(n1, n2)가 Drain/Down 상태입니다")).toBeInTheDocument();
  rerender(<WaitReasonText reason={{ code: "a-newer-code", text: "서버가 준 한국어 설명" }} />);
  expect(screen.getByText("서버가 준 한국어 설명")).toBeInTheDocument();
  await i18n.changeLanguage("en");
  rerender(<WaitReasonText reason={{ code: "gpus", text: "", gpu_type: "A100", gpu_count: 4, gpus_free: 2 }} />);
  expect(screen.getByText("needs 4×A100 on one node; 2 free")).toBeInTheDocument();
  await i18n.changeLanguage("ko");
});

test("an estimated start: unknown, soon, or a time", () => {
  const { rerender } = render(<EstimatedStart at={null} />);
  expect(screen.getByText("알 수 없음")).toBeInTheDocument();
  rerender(<EstimatedStart at={new Date(Date.now() - 5000).toISOString()} />);
  expect(screen.getByText("곧")).toBeInTheDocument();
  const later = new Date(Date.now() + 3600_000).toISOString();
  rerender(<EstimatedStart at={later} />);
  expect(document.querySelector("time")).toHaveAttribute("datetime", later);
});

interface Row { id: number }

function Rows({ total, fetched }: { total: number; fetched: number[] }) {
  const pageSize = 100;
  const { rows, virtualizer, scrollRef } = usePagedTable<Row>(["test", "rows"], pageSize, async (page, size) => {
    fetched.push(page);
    const items = Array.from({ length: Math.max(0, Math.min(size, total - page * size)) }, (_, i) => ({ id: page * size + i }));
    return { items, total };
  }, 40);
  if (rows.isPending) return <p>loading</p>;
  return (
    <VirtualTable virtualizer={virtualizer} scrollRef={scrollRef} caption="rows" label="rows list" columns={1} empty="none" testId="t"
      head={<tr><th scope="col">id</th></tr>}
      renderRow={(index, ref) => {
        const row = rows.rowAt(index);
        return <tr key={index} ref={ref} data-index={index} aria-rowindex={index + 2}><td>{row ? `row ${row.id}` : "…"}</td></tr>;
      }} />
  );
}

test("10,000 rows: only the rows in view render, and only the pages in view are fetched", async () => {
  const fetched: number[] = [];
  wrap(<Rows total={10_000} fetched={fetched} />);
  const table = await screen.findByTestId("t");
  await within(table).findByText("row 0");
  const rendered = within(table).getAllByRole("row").length - 1; // without the header
  expect(rendered).toBeGreaterThan(5);
  expect(rendered).toBeLessThan(60); // a viewport (640 px / 40 px) and the overscan, not 10,000
  expect(table).toHaveAttribute("aria-rowcount", "10001");
  expect(screen.getByTestId("t-range").textContent).toMatch(/10000행 중 1–\d+행 표시/);
  expect(new Set(fetched)).toEqual(new Set([0]));
  expect(screen.getByRole("region", { name: "rows list" })).toHaveAttribute("tabindex", "0");
});

test("an empty list says so", async () => {
  wrap(<Rows total={0} fetched={[]} />);
  await waitFor(() => expect(screen.getByText("none")).toBeInTheDocument());
});

test("pagesFor covers a range across page boundaries", () => {
  expect(pagesFor(0, 10, 100)).toEqual([0]);
  expect(pagesFor(95, 130, 100)).toEqual([0, 1]);
  expect(pagesFor(250, 420, 100)).toEqual([2, 3, 4]);
});

const run = (id: string, status: ComponentRun["status"], round = 1): ComponentRun => ({
  task_id: "T1", component_id: id, name: id.toLowerCase(), round, status, attempt: 1, rerun_reason: null,
  allocation: status === "running" ? { node: "n1", gpu_type: "A100", gpu_count: 2, gpu_indices: [0, 1], memory: "8GB", cpu: 1 } : null,
  started_at: null, finished_at: null, duration_s: null, exit_code: null, reason: null, log: null,
});

test("the DAG lays components out by their longest chain, joined with their latest run", () => {
  expect(Object.fromEntries(layers(["A", "B", "C", "D"], [{ from: "A", to: "B" }, { from: "B", to: "D" }, { from: "A", to: "D" }, { from: "C", to: "D" }])))
    .toEqual({ A: 0, B: 1, C: 0, D: 2 });
  const [dag] = taskDags(
    [{ task_id: "T1", name: "main", components: [{ component_id: "A", name: "a" }, { component_id: "B", name: "b" }], workflow: [{ from: "A", to: "B" }] }],
    [run("A", "succeeded"), run("A", "running", 2), run("B", "pending")],
  );
  expect(dag.nodes.map((n) => [n.id, n.layer, n.run?.status])).toEqual([["A", 0, "running"], ["B", 1, "pending"]]);
  expect(dag.edges).toHaveLength(1);
  expect(dag.nodes[1].x).toBeGreaterThan(dag.nodes[0].x);
  // without the spec (a workload the trainer does not know): the runs alone, no edges
  const [alone] = taskDags(null, [run("A", "running"), run("B", "pending")]);
  expect(alone.nodes.map((n) => n.id)).toEqual(["A", "B"]);
  expect(alone.edges).toHaveLength(0);
});
