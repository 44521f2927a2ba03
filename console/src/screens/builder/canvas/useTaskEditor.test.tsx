// The Task editor against a fake builder: a refused connection becomes a refusal on the canvas with the
// service's message (and no undo step), every edit sends the revision it was made from, a 409 becomes the
// conflict message, and a tidy is undone in one step.
import type { ReactNode } from "react";
import { describe, expect, it, vi } from "vitest";
import { act, renderHook, waitFor } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { ApiError } from "../../../api/client";
import type { BuilderApi, Edge, TaskView } from "../../../api/builder";
import { useTaskEditor } from "./useTaskEditor";

const CYCLE = "순환 참조가 감지되었습니다. 이 연결을 추가하면 순환이 발생합니다";
const STALE = "다른 사용자가 이 App을 먼저 수정했습니다 (현재 리비전 9, 편집 기준 리비전 3).";

const component = (id: string, order: number) => ({
  component_id: id, name: id, type: "trainer" as const, image: { registry: "r", tag: "1" },
  resources: { gpu_type: "A100", gpu_count: 1, memory: "8GB" }, params: {}, order, library_version: "1.0",
  exceeds_threshold: false,
});

/** a builder keeping one Task in memory, refusing a cycle as services/builder/workflow.py does */
function fakeBuilder(options: { staleAfter?: number } = {}) {
  let task: TaskView = {
    task_id: "TASK-001", name: "t", imported_from: null, revision: 3,
    components: [component("a", 1), component("b", 2)], workflow: [{ from: "a", to: "b" }], order: ["a", "b"],
  };
  const sent: (number | null)[] = [];
  const edit = (revision: number | null, change: (t: TaskView) => TaskView) => {
    sent.push(revision);
    if (options.staleAfter !== undefined && sent.length > options.staleAfter) {
      throw new ApiError(409, STALE, { detail: { code: "edit_conflict", message: STALE, revision: 9 } });
    }
    task = { ...change(task), revision: (task.revision ?? 0) + 1 };
    return Promise.resolve(task);
  };
  const api = {
    getTask: vi.fn(() => Promise.resolve(task)),
    connect: vi.fn((_a: string, _t: string, e: Edge, rev: number | null) => {
      if (e.from === "b" && e.to === "a") {
        return Promise.reject(new ApiError(422, CYCLE, { detail: { code: "cycle", message: CYCLE } }));
      }
      return edit(rev, (t) => ({ ...t, workflow: [...t.workflow, e] }));
    }),
    disconnect: vi.fn((_a: string, _t: string, e: Edge, rev: number | null) =>
      edit(rev, (t) => ({ ...t, workflow: t.workflow.filter((w) => w.from !== e.from || w.to !== e.to) }))),
    setOrder: vi.fn((_a: string, _t: string, order: string[], rev: number | null) => edit(rev, (t) => ({ ...t, order }))),
    patchComponent: vi.fn((_a: string, _t: string, id: string, changes: { name?: string }, rev: number | null) =>
      edit(rev, (t) => ({ ...t, components: t.components.map((c) => (c.component_id === id ? { ...c, ...changes } : c)) }))),
  };
  return { api: api as unknown as BuilderApi, sent, calls: api };
}

function wrapper({ children }: { children: ReactNode }) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return <QueryClientProvider client={client}>{children}</QueryClientProvider>;
}

async function editorWith(api: BuilderApi) {
  localStorage.clear();
  const hook = renderHook(() => useTaskEditor("APP-000001", "TASK-001", api), { wrapper });
  await waitFor(() => expect(hook.result.current.task).toBeDefined());
  return hook;
}

describe("the Task editor", () => {
  it("shows a refused connection with the builder's exact BL-09 message at that edge, and records no step", async () => {
    const { api } = fakeBuilder();
    const { result } = await editorWith(api);
    await act(() => result.current.connect({ from: "b", to: "a" }));
    expect(result.current.refusals).toEqual([
      { id: "refused:b->a", edge: { from: "b", to: "a" }, code: "cycle", message: CYCLE },
    ]);
    expect(result.current.history.done).toHaveLength(0);
    expect(result.current.error).toBeNull();
    act(() => result.current.dismiss("refused:b->a"));
    expect(result.current.refusals).toEqual([]);
  });

  it("sends each edit from the revision the last answer named (If-Match)", async () => {
    const { api, sent } = fakeBuilder();
    const { result } = await editorWith(api);
    await act(() => result.current.patch("a", { name: "renamed" }));
    await act(() => result.current.disconnect({ from: "a", to: "b" }));
    expect(sent).toEqual([3, 4]);
    expect(result.current.task?.revision).toBe(5);
    await act(() => result.current.undo()); // connects a → b again, from revision 5
    expect(sent[2]).toBe(5);
    expect(result.current.task?.workflow).toEqual([{ from: "a", to: "b" }]);
  });

  it("turns a 409 edit_conflict into the conflict message; reloading clears it and the undo history", async () => {
    const { api } = fakeBuilder({ staleAfter: 1 });
    const { result } = await editorWith(api);
    await act(() => result.current.patch("a", { name: "first" }));
    expect(result.current.conflict).toBeNull();
    await act(() => result.current.patch("a", { name: "second" }));
    expect(result.current.conflict).toBe(STALE);
    expect(result.current.save).toBe("error");
    expect(result.current.history.done).toHaveLength(1); // the refused edit is no step
    await act(() => result.current.reload());
    expect(result.current.conflict).toBeNull();
    expect(result.current.history.done).toHaveLength(0);
  });

  it("undoes a tidy (ELK's layout of every node) in one step and redoes it in one", async () => {
    const { api, calls } = fakeBuilder();
    const { result } = await editorWith(api);
    const before = result.current.positions;
    let took = 0;
    await act(async () => {
      took = await result.current.tidy([{ id: "a" }, { id: "b" }]);
    });
    expect(took).toBeGreaterThanOrEqual(0);
    const after = result.current.positions;
    expect(after.b.x).toBeGreaterThan(after.a.x); // left to right
    expect(result.current.history.done.map((s) => s.label)).toEqual(["builder.step.tidy"]);
    await act(() => result.current.undo());
    expect(result.current.positions).toEqual(before);
    await act(() => result.current.redo());
    expect(result.current.positions).toEqual(after);
    expect(calls.patchComponent).not.toHaveBeenCalled(); // positions are this browser's, not the spec's
  });
});
