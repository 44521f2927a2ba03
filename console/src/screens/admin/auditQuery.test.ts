import { describe, expect, it } from "vitest";
import { changesOf } from "./auditChanges";
import { auditQuery, FilterError, filtersFrom, NO_FILTERS, paramsOf } from "./auditQuery";

describe("the audit log's filters", () => {
  it("become GET /api/audit's query: trimmed, empty fields left out, snake_case names", () => {
    expect(auditQuery(NO_FILTERS)).toEqual({});
    expect(auditQuery({ ...NO_FILTERS, user: " kim ", action: "approval.", targetType: "workload", targetId: "WL-1",
                        kind: "decision", outcome: "refused" }))
      .toEqual({ user: "kim", action: "approval.", target_type: "workload", target_id: "WL-1", kind: "decision", outcome: "refused" });
  });

  it("send times typed in local time as UTC with a zone (the gateway refuses a time without one)", () => {
    const local = "2026-12-07T09:30";
    const query = auditQuery({ ...NO_FILTERS, from: local, to: "2026-12-07T18:00" });
    expect(query.from).toBe(new Date(local).toISOString());
    expect(String(query.from)).toMatch(/Z$/);
    expect(query.to).toBe(new Date("2026-12-07T18:00").toISOString());
  });

  it("refuse a range that ends before it starts, and a time that cannot be read", () => {
    expect(() => auditQuery({ ...NO_FILTERS, from: "2026-12-07T18:00", to: "2026-12-07T09:00" })).toThrow(FilterError);
    expect(() => auditQuery({ ...NO_FILTERS, from: "yesterday-ish" })).toThrow(FilterError);
  });

  it("round-trip through the URL, ignoring an unknown kind or outcome", () => {
    const filters = { ...NO_FILTERS, user: "admin", targetId: "e2e-u-1", kind: "refusal" as const, from: "2026-12-07T09:30" };
    const params = new URLSearchParams(paramsOf(filters));
    expect(params.toString()).toBe("user=admin&target_id=e2e-u-1&kind=refusal&from=2026-12-07T09%3A30");
    expect(filtersFrom(params)).toEqual(filters);
    expect(filtersFrom(new URLSearchParams("kind=drop+table&outcome=ok"))).toEqual({ ...NO_FILTERS, outcome: "ok" });
  });
});

describe("an audit record's changes", () => {
  it("name only the fields that changed", () => {
    expect(changesOf({ id: "kim", role: "researcher", active: true }, { id: "kim", role: "viewer", active: true }))
      .toBe("role: researcher → viewer");
    expect(changesOf({ status: "Active" }, { status: "Drain" }, "maintenance")).toBe("status: Active → Drain; “maintenance”");
  });

  it("show a creation or removal whole, cut short", () => {
    expect(changesOf(null, { id: "kim" })).toBe('+ {"id":"kim"}');
    expect(changesOf({ id: "tok" }, null)).toBe('− {"id":"tok"}');
    expect(changesOf(null, { text: "x".repeat(500) }).length).toBe(240);
    expect(changesOf(null, null)).toBe("");
  });
});
