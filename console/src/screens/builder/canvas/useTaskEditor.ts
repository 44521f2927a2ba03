// The Task editor's state: the Task as the builder last answered it (with the App revision every edit
// sends back as If-Match), node positions (kept in this browser: the spec has none), undo/redo, refused
// connections and edit conflicts. Edits run one after another, each from the revision the last answer named.
import { useCallback, useMemo, useRef, useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { builderApi, type BuilderApi, type ComponentChanges, type Edge, type TaskView } from "../../../api/builder";
import { emptyHistory, record, redo as redoOf, undo as undoOf, type History } from "./history";
import {
  connectStep, disconnectStep, moveStep, movesNothing, patchStep, placeStep, removeStep,
  type Op, type Positions, type Step, type XY,
} from "./ops";
import { columnLayout, elkLayout, type LayoutNode } from "./layout";
import { conflictOf, dismissRefusal, refusalOf, showRefusal, type Refusal } from "./refusal";

export type SaveState = "idle" | "saving" | "saved" | "error";
export const taskKey = (appId: string, taskId: string) => ["builder", "task", appId, taskId] as const;
const REFUSAL_MS = 8000;

function storageKey(appId: string, taskId: string) {
  return `avatar.builder.positions.${appId}.${taskId}`;
}

function savedPositions(appId: string, taskId: string): Positions {
  try {
    return JSON.parse(localStorage.getItem(storageKey(appId, taskId)) ?? "{}") as Positions;
  } catch {
    return {};
  }
}

/** mount it keyed by App and Task (key={`${appId}/${taskId}`}): each Task starts with its own state */
export function useTaskEditor(appId: string, taskId: string, api: BuilderApi = builderApi) {
  const client = useQueryClient();
  const query = useQuery({ queryKey: taskKey(appId, taskId), queryFn: () => api.getTask(appId, taskId) });
  const task = query.data;
  // the revision of the Task shown: an answer, or a refetch that brought someone else's edit (then shown)
  const revision = useRef<number | null>(null);
  const seen = useRef<TaskView | undefined>(undefined);
  if (task && task !== seen.current) {
    seen.current = task;
    revision.current = task.revision;
  }

  const [positions, setPositionsState] = useState<Positions>(() => savedPositions(appId, taskId));
  const positionsRef = useRef(positions);
  const [history, setHistory] = useState<History>(emptyHistory);
  const [refusals, setRefusals] = useState<Refusal[]>([]);
  const [conflict, setConflict] = useState<string | null>(null);
  const [save, setSave] = useState<SaveState>("idle");
  const [error, setError] = useState<unknown>(null);
  const queue = useRef<Promise<unknown>>(Promise.resolve());
  const latest = useRef<TaskView | undefined>(task);
  if (task) latest.current = task;

  const setPositions = useCallback(
    (next: Positions) => {
      positionsRef.current = next;
      setPositionsState(next);
      try {
        localStorage.setItem(storageKey(appId, taskId), JSON.stringify(next));
      } catch {
        /* not kept: the column layout places them next time */
      }
    },
    [appId, taskId],
  );

  // nodes nobody placed yet get the column layout's place (a new Task, or positions from another browser)
  const layout = useCallback(
    (view: TaskView): Positions => {
      const missing = view.order.filter((id) => !positionsRef.current[id]);
      if (missing.length === 0) return positionsRef.current;
      const columns = columnLayout(view.order, view.workflow);
      const next = { ...positionsRef.current };
      for (const id of missing) next[id] = columns[id];
      return next;
    },
    [],
  );
  const shown = useMemo(() => (task ? layout(task) : positions), [task, positions, layout]);

  const answered = useCallback(
    (view: TaskView) => {
      revision.current = view.revision;
      latest.current = view;
      client.setQueryData(taskKey(appId, taskId), view);
      void client.invalidateQueries({ queryKey: ["builder", "app", appId] });
      void client.invalidateQueries({ queryKey: ["builder", "apps"] });
    },
    [client, appId, taskId],
  );

  /** one operation against the builder (or the local positions) */
  const apply = useCallback(
    async (op: Op) => {
      const rev = revision.current;
      switch (op.kind) {
        case "move":
          setPositions({ ...positionsRef.current, ...op.positions });
          return;
        case "place": {
          const c = op.component;
          const full = c.image !== undefined;
          let view = await api.place(appId, taskId, full
            ? { component_id: c.component_id, name: c.name, image: c.image, resources: c.resources, params: c.params }
            : { component_id: c.component_id }, rev);
          answered(view);
          const placed = view.components.find((p) => p.component_id === c.component_id);
          if (full && placed && JSON.stringify(placed.params) !== JSON.stringify(c.params)) {
            view = await api.patchComponent(appId, taskId, c.component_id, { params: c.params }, view.revision);
            answered(view);
          }
          return;
        }
        case "remove":
          return answered(await api.removeComponent(appId, taskId, op.componentId, rev));
        case "connect":
          return answered(await api.connect(appId, taskId, op.edge, rev));
        case "disconnect":
          return answered(await api.disconnect(appId, taskId, op.edge, rev));
        case "patch":
          return answered(await api.patchComponent(appId, taskId, op.componentId, op.changes, rev));
        case "order":
          return answered(await api.setOrder(appId, taskId, op.order, rev));
      }
    },
    [api, appId, taskId, answered, setPositions],
  );

  const failed = useCallback((problem: unknown) => {
    const stale = conflictOf(problem);
    if (stale) setConflict(stale.message);
    else setError(problem);
    setSave("error");
  }, []);

  /** run operations in order, after whatever is still running; resolves false when one was refused */
  const run = useCallback(
    (ops: Op[], onRefused?: (problem: unknown) => boolean): Promise<boolean> => {
      const local = ops.every((op) => op.kind === "move");
      const next = queue.current.then(async () => {
        if (!local) setSave("saving");
        try {
          for (const op of ops) await apply(op);
          if (!local) setSave("saved");
          setError(null);
          return true;
        } catch (problem) {
          if (onRefused?.(problem)) {
            setSave("idle");
            return false;
          }
          failed(problem);
          return false;
        }
      });
      queue.current = next;
      return next;
    },
    [apply, failed],
  );

  const perform = useCallback(
    async (step: Step, onRefused?: (problem: unknown) => boolean) => {
      if (movesNothing(step)) return false;
      const done = await run(step.forward, onRefused);
      if (done) setHistory((h) => record(h, step));
      return done;
    },
    [run],
  );

  const current = () => latest.current as TaskView;

  const place = (componentId: string, at: XY | null) => perform(placeStep(componentId, at));
  const remove = (componentId: string) => perform(removeStep(current(), componentId, layout(current())));
  const disconnect = (edge: Edge) => perform(disconnectStep(current(), edge));
  const patch = (componentId: string, changes: ComponentChanges) => {
    const component = current().components.find((c) => c.component_id === componentId);
    return component ? perform(patchStep(component, changes)) : Promise.resolve(false);
  };
  const connect = (edge: Edge) =>
    perform(connectStep(current(), edge), (problem) => {
      const refusal = refusalOf(problem, edge);
      if (!refusal) return false;
      setRefusals((shown) => showRefusal(shown, refusal));
      setTimeout(() => setRefusals((shown) => dismissRefusal(shown, refusal.id)), REFUSAL_MS);
      return true;
    });
  const moved = (before: Positions, after: Positions) => perform(moveStep(before, after));

  /** "정렬": ELK's layout for every node, one undo step; answers how long the layout took */
  const tidy = async (nodes: LayoutNode[]) => {
    const began = performance.now();
    const after = await elkLayout(nodes, current().workflow);
    const took = performance.now() - began;
    await perform(moveStep(layout(current()), after, "builder.step.tidy")); // from where the nodes are shown
    return took;
  };

  const undo = async () => {
    const found = undoOf(history);
    if (!found) return;
    setHistory(found.history);
    if (!(await run(found.ops))) setHistory(history); // refused: the step stays where it was
  };
  const redo = async () => {
    const found = redoOf(history);
    if (!found) return;
    setHistory(found.history);
    if (!(await run(found.ops))) setHistory(history);
  };

  /** after a conflict: the Task as it is now; the undo history no longer applies to it */
  const reload = async () => {
    setConflict(null);
    setHistory(emptyHistory());
    revision.current = null;
    const view = await client.fetchQuery({ queryKey: taskKey(appId, taskId), queryFn: () => api.getTask(appId, taskId), staleTime: 0 });
    revision.current = view.revision;
    latest.current = view;
    setSave("idle");
  };

  const dismiss = useCallback((id: string) => setRefusals((s) => dismissRefusal(s, id)), []);

  return {
    query, task, positions: shown, setPositions, history, refusals, conflict, save, error,
    place, remove, connect, disconnect, patch, moved, tidy, undo, redo, reload,
    dismiss,
    canUndo: history.done.length > 0,
    canRedo: history.undone.length > 0,
  };
}

export type TaskEditor = ReturnType<typeof useTaskEditor>;
