// One EventSource on /api/events for the whole console: every saga event invalidates the react-query
// caches it makes stale, `reset` refetches everything. The browser's EventSource reconnects by itself
// and sends Last-Event-ID, so nothing is missed; when it gives up (the gateway answered an error), this
// hook opens a new one after a pause and passes the last id as ?last_event_id= (a new EventSource has none).
import { useEffect, useRef, useState } from "react";
import type { QueryClient } from "@tanstack/react-query";
import { rootsFor, STREAMED_TYPES } from "./invalidation";
import type { LiveEvent } from "../api/types";

export type LiveState = "connecting" | "open" | "lost";

export interface LiveOptions {
  url?: string;
  enabled?: boolean;
  /** for tests: the EventSource class to use */
  source?: typeof EventSource;
  retryMs?: number;
  /** called for every event after the caches were invalidated */
  onEvent?: (event: LiveEvent) => void;
  /** the stream said the session no longer holds */
  onUnauthorized?: () => void;
}

const SEEN_LIMIT = 500; // event ids remembered to drop a repeat (the gateway may redeliver one)

export function useLiveEvents(client: QueryClient, options: LiveOptions = {}): LiveState {
  const { url = "/api/events", enabled = true, retryMs = 3000 } = options;
  const [state, setState] = useState<LiveState>("connecting");
  const callbacks = useRef(options);
  callbacks.current = options;

  useEffect(() => {
    if (!enabled) return;
    const Source = options.source ?? EventSource;
    let source: EventSource | null = null;
    let lastId: string | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const seen = new Set<string>();

    const handle = (message: MessageEvent) => {
      if (message.lastEventId) lastId = message.lastEventId;
      let event: LiveEvent;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.event_id) {
        if (seen.has(event.event_id)) return;
        seen.add(event.event_id);
        if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value as string);
      }
      for (const root of rootsFor(event.type ?? message.type)) {
        void client.invalidateQueries({ queryKey: [root] });
      }
      callbacks.current.onEvent?.(event);
    };

    const reset = (message: MessageEvent) => {
      if (message.lastEventId) lastId = message.lastEventId;
      let reason = "";
      try {
        reason = JSON.parse(message.data).reason;
      } catch {
        /* a reset without a reason still means: reload */
      }
      void client.invalidateQueries();
      if (reason === "unauthorized") {
        stopped = true;
        source?.close();
        callbacks.current.onUnauthorized?.();
      }
    };

    const open = () => {
      const target = lastId ? `${url}${url.includes("?") ? "&" : "?"}last_event_id=${encodeURIComponent(lastId)}` : url;
      source = new Source(target, { withCredentials: true });
      source.onopen = () => setState("open");
      source.onerror = () => {
        if (stopped || !source) return;
        setState("lost");
        if (source.readyState === Source.CLOSED) {
          // the browser gave up (an error status): try again ourselves, from the last id seen
          source.close();
          timer = setTimeout(open, retryMs);
        }
      };
      for (const type of STREAMED_TYPES) source.addEventListener(type, handle as EventListener);
      source.addEventListener("reset", reset as EventListener);
      source.addEventListener("message", handle as EventListener);
    };

    open();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      source?.close();
    };
  }, [client, url, enabled, retryMs, options.source]);

  return state;
}
