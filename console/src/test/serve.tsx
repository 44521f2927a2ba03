// What the screens' tests share: a fetch that answers like the gateway and records what the screen sent,
// and a screen rendered with a fresh query cache (no retries: a refusal shows at once) inside a router.
import type { ReactNode } from "react";
import { render } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter } from "react-router";

export interface Sent {
  method: string;
  url: string;
  body: any; // parsed JSON, as the screen sent it
}

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** replaces fetch with `answer` (unmatched calls should answer 500); answers the list of calls made */
export function stubFetch(answer: (call: Sent) => Response | Promise<Response>): Sent[] {
  const sent: Sent[] = [];
  globalThis.fetch = (async (url: string, init: RequestInit = {}) => {
    const call = { method: init.method ?? "GET", url, body: init.body ? JSON.parse(String(init.body)) : undefined };
    sent.push(call);
    return answer(call);
  }) as typeof fetch;
  return sent;
}

export function renderScreen(screen: ReactNode, initialEntries?: string[]): QueryClient {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={initialEntries}>{screen}</MemoryRouter>
    </QueryClientProvider>,
  );
  return client;
}
