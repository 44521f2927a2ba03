// Undo/redo as a pure value: the steps done (the last is undone first) and the steps undone (redone first).
// A new step clears what was undone, as every editor does.
import type { Op, Step } from "./ops";

export interface History {
  done: Step[];
  undone: Step[];
}

export const LIMIT = 200; // steps kept; the oldest go first

export const emptyHistory = (): History => ({ done: [], undone: [] });

export function record(history: History, step: Step): History {
  return { done: [...history.done, step].slice(-LIMIT), undone: [] };
}

/** the operations that undo the last step, and the history after it; null when there is nothing to undo */
export function undo(history: History): { ops: Op[]; history: History; step: Step } | null {
  const step = history.done[history.done.length - 1];
  if (!step) return null;
  return { ops: step.backward, step, history: { done: history.done.slice(0, -1), undone: [...history.undone, step] } };
}

export function redo(history: History): { ops: Op[]; history: History; step: Step } | null {
  const step = history.undone[history.undone.length - 1];
  if (!step) return null;
  return { ops: step.forward, step, history: { done: [...history.done, step], undone: history.undone.slice(0, -1) } };
}
