import { ApiError, api, messageOf, readCookie, withQuery } from "./client";
import { moveOf } from "../rules/queue";
import type { QueueItem } from "./types";

test("the service's own message is what an error shows", () => {
  expect(messageOf(409, { detail: "테스트 필요: 최소 실행 테스트가 통과(passed)된 경우에만 승인할 수 있습니다" })).toMatch(/^테스트 필요/);
  expect(messageOf(422, { detail: [{ loc: ["body", "comment"], msg: "Field required" }] })).toBe("comment: Field required");
  expect(messageOf(502, "Bad Gateway")).toBe("Bad Gateway");
  expect(messageOf(500, null)).toBe("HTTP 500");
});

test("every change carries the CSRF token from the readable cookie; reads do not", async () => {
  document.cookie = "avatar_csrf=tok%2Fen";
  expect(readCookie("avatar_csrf")).toBe("tok/en");
  const calls: [string, RequestInit][] = [];
  globalThis.fetch = (async (url: string, init: RequestInit) => {
    calls.push([url, init]);
    const status = init.method === "POST" ? 409 : 200;
    const body = status === 200 ? { ok: true } : { detail: "already decided" };
    return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  await api("GET", "/api/x", undefined, { status: "awaiting approval", page: 1, empty: "" });
  await expect(api("POST", "/api/x/approve", {})).rejects.toEqual(new ApiError(409, "already decided", { detail: "already decided" }));
  expect(calls[0][0]).toBe("/api/x?status=awaiting+approval&page=1");
  expect((calls[0][1].headers as Record<string, string>)["X-CSRF-Token"]).toBeUndefined();
  expect((calls[1][1].headers as Record<string, string>)["X-CSRF-Token"]).toBe("tok/en");
  expect(calls[1][1].credentials).toBe("same-origin");
});

test("a queue move is 'before' the entry above or 'after' the entry below", () => {
  const items = ["A", "B", "C"].map((id, i) => ({ job_id: id, position: i + 1 }) as QueueItem);
  expect(moveOf(items, 0, "up")).toBeNull();
  expect(moveOf(items, 1, "up")).toEqual({ before: "A" });
  expect(moveOf(items, 1, "down")).toEqual({ after: "C" });
  expect(moveOf(items, 2, "down")).toBeNull();
  expect(withQuery("/p")).toBe("/p");
});
