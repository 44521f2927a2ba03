import { describe, expect, it } from "vitest";
import type { TaskView } from "../../../api/builder";
import { emptyHistory, record, redo, undo } from "./history";
import { connectStep, moveStep, removeStep } from "./ops";

const component = (id: string, order: number) => ({
  component_id: id, name: id, type: "trainer" as const, image: { registry: `r/${id}`, tag: "1" },
  resources: { gpu_type: "A100", gpu_count: 1, memory: "8GB" }, params: { k: id }, order,
  library_version: "1.0", exceeds_threshold: false,
});
const task: TaskView = {
  task_id: "TASK-001", name: "t", imported_from: null, revision: 7,
  components: [component("a", 1), component("b", 2), component("c", 3)],
  workflow: [{ from: "a", to: "b" }, { from: "b", to: "c" }],
  order: ["a", "b", "c"],
};

describe("undo and redo", () => {
  it("a tidy that moves every node is one step: one undo puts them all back, one redo moves them again", () => {
    const before = { a: { x: 0, y: 0 }, b: { x: 10, y: 0 }, c: { x: 20, y: 0 } };
    const after = { a: { x: 0, y: 0 }, b: { x: 300, y: 0 }, c: { x: 600, y: 40 } };
    let history = record(record(emptyHistory(), connectStep(task, { from: "a", to: "c" })), moveStep(before, after, "builder.step.tidy"));
    expect(history.done).toHaveLength(2);

    const undone = undo(history)!;
    expect(undone.step.label).toBe("builder.step.tidy");
    expect(undone.ops).toEqual([{ kind: "move", positions: { b: { x: 10, y: 0 }, c: { x: 20, y: 0 } } }]);
    history = undone.history;
    expect(history.done).toHaveLength(1); // the connection before it is still there to undo

    const redone = redo(history)!;
    expect(redone.ops).toEqual([{ kind: "move", positions: { b: { x: 300, y: 0 }, c: { x: 600, y: 40 } } }]);
    expect(redone.history.undone).toHaveLength(0);
  });

  it("a new step after an undo drops what was undone", () => {
    const step = moveStep({ a: { x: 0, y: 0 } }, { a: { x: 5, y: 5 } });
    const history = undo(record(emptyHistory(), step))!.history;
    expect(record(history, step).undone).toEqual([]);
    expect(undo(emptyHistory())).toBeNull();
    expect(redo(emptyHistory())).toBeNull();
  });

  it("undoing a removal places the component back as it was, with its edges, its order and its position", () => {
    const step = removeStep(task, "b", { b: { x: 10, y: 20 } });
    expect(step.forward).toEqual([{ kind: "remove", componentId: "b" }]);
    expect(step.backward).toEqual([
      { kind: "place", component: { component_id: "b", name: "b", image: { registry: "r/b", tag: "1" }, resources: component("b", 2).resources, params: { k: "b" } } },
      { kind: "connect", edge: { from: "a", to: "b" } },
      { kind: "connect", edge: { from: "b", to: "c" } },
      { kind: "order", order: ["a", "b", "c"] },
      { kind: "move", positions: { b: { x: 10, y: 20 } } },
    ]);
  });

  it("undoing a connection also restores the order the builder moved to respect it", () => {
    expect(connectStep(task, { from: "c", to: "a" }).backward).toEqual([
      { kind: "disconnect", edge: { from: "c", to: "a" } },
      { kind: "order", order: ["a", "b", "c"] },
    ]);
  });
});
