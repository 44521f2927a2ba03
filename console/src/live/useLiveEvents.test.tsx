import { act, render, screen } from "@testing-library/react";
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { useLiveEvents, type LiveState } from "./useLiveEvents";

/** An EventSource stand-in the test drives: named events, errors, the browser giving up. */
class FakeSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static made: FakeSource[] = [];
  readyState = FakeSource.CONNECTING;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  listeners = new Map<string, ((m: MessageEvent) => void)[]>();
  constructor(readonly url: string) {
    FakeSource.made.push(this);
  }
  addEventListener(type: string, listener: (m: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close() {
    this.readyState = FakeSource.CLOSED;
  }
  open() {
    this.readyState = FakeSource.OPEN;
    this.onopen?.();
  }
  emit(type: string, id: string, data: unknown) {
    const message = new MessageEvent(type, { data: JSON.stringify(data), lastEventId: id });
    for (const listener of this.listeners.get(type) ?? []) listener(message);
  }
  fail(closed: boolean) {
    this.readyState = closed ? FakeSource.CLOSED : FakeSource.CONNECTING;
    this.onerror?.();
  }
}

function event(type: string, id: string) {
  return { event_id: id, type, occurred_at: "2026-12-07T12:00:00Z", producer: "scheduler", correlation_id: "W-1", data: {} };
}

function Probe({ client, counts }: { client: QueryClient; counts: Record<string, number> }) {
  const state: LiveState = useLiveEvents(client, { source: FakeSource as unknown as typeof EventSource, retryMs: 10 });
  for (const root of ["scheduler", "models"]) {
    // eslint-disable-next-line react-hooks/rules-of-hooks
    useQuery({ queryKey: [root, "x"], queryFn: () => { counts[root] = (counts[root] ?? 0) + 1; return counts[root]; } });
  }
  return <p data-testid="state">{state}</p>;
}

function setup() {
  FakeSource.made = [];
  const client = new QueryClient({ defaultOptions: { queries: { staleTime: Infinity, retry: false } } });
  const counts: Record<string, number> = {};
  render(
    <QueryClientProvider client={client}>
      <Probe client={client} counts={counts} />
    </QueryClientProvider>,
  );
  return { client, counts, source: () => FakeSource.made[FakeSource.made.length - 1] };
}

const flush = () => act(() => new Promise((resolve) => setTimeout(resolve, 20)));

test("an event refetches the queries it makes stale, and only those", async () => {
  const { counts, source } = setup();
  await flush();
  expect(counts).toEqual({ scheduler: 1, models: 1 });
  act(() => source().open());
  expect(screen.getByTestId("state").textContent).toBe("open");
  act(() => source().emit("workload.started", "1-0", event("workload.started", "e1")));
  await flush();
  expect(counts).toEqual({ scheduler: 2, models: 1 });
  act(() => source().emit("model.stored", "2-0", event("model.stored", "e2")));
  await flush();
  expect(counts).toEqual({ scheduler: 2, models: 2 });
});

test("a repeated event id is dropped; reset refetches everything", async () => {
  const { counts, source } = setup();
  await flush();
  act(() => source().open());
  act(() => source().emit("workload.queued", "1-0", event("workload.queued", "e1")));
  await flush();
  act(() => source().emit("workload.queued", "1-1", event("workload.queued", "e1")));
  await flush();
  expect(counts.scheduler).toBe(2);
  act(() => source().emit("reset", "5-0", { reason: "missed", message: "gap" }));
  await flush();
  expect(counts).toEqual({ scheduler: 3, models: 2 });
});

test("a lost connection shows as lost; when the browser gives up, a new stream resumes after the last id", async () => {
  const { source } = setup();
  await flush();
  act(() => source().open());
  act(() => source().emit("workload.queued", "7-3", event("workload.queued", "e9")));
  act(() => source().fail(false)); // the browser retries by itself (it sends Last-Event-ID)
  expect(screen.getByTestId("state").textContent).toBe("lost");
  expect(FakeSource.made).toHaveLength(1);
  act(() => source().open());
  expect(screen.getByTestId("state").textContent).toBe("open");
  act(() => source().fail(true)); // an error status: the browser does not retry
  await flush();
  expect(FakeSource.made).toHaveLength(2);
  expect(source().url).toBe("/api/events?last_event_id=7-3");
});
