// One App as the builder answers it, and its App-level edits (Tasks, imports, env vars), each sent from the
// revision shown (If-Match); a 409 edit_conflict becomes the banner's message instead of an error.
import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { builderApi, type AppView } from "../../api/builder";
import { conflictOf } from "./canvas/refusal";
import { APPS_KEY } from "./AppList";

export const appKey = (appId: string) => ["builder", "app", appId] as const;

export function useApp(appId: string) {
  const client = useQueryClient();
  const query = useQuery({ queryKey: appKey(appId), queryFn: () => builderApi.getApp(appId) });
  const [conflict, setConflict] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  /** run one edit from the shown revision; answers whether it was applied */
  const edit = async (change: (revision: number) => Promise<unknown>): Promise<boolean> => {
    const revision = query.data?.revision;
    if (revision === undefined) return false;
    setBusy(true);
    try {
      const answer = await change(revision);
      if (answer && typeof answer === "object" && "app_id" in answer && "tasks" in answer) {
        client.setQueryData(appKey(appId), answer as AppView);
      }
      await client.invalidateQueries({ queryKey: appKey(appId) });
      void client.invalidateQueries({ queryKey: APPS_KEY });
      setError(null);
      return true;
    } catch (problem) {
      const stale = conflictOf(problem);
      if (stale) setConflict(stale.message);
      else setError(problem);
      return false;
    } finally {
      setBusy(false);
    }
  };

  const reload = async () => {
    setConflict(null);
    await client.invalidateQueries({ queryKey: appKey(appId) });
  };

  return { query, app: query.data, edit, conflict, error, busy, reload };
}
