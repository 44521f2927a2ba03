import { describe, expect, it } from "vitest";
import { ApiError } from "../../../api/client";
import { conflictOf, refusalOf, showRefusal } from "./refusal";

const CYCLE = "순환 참조가 감지되었습니다. 이 연결을 추가하면 순환이 발생합니다";
const edge = { from: "a", to: "b" };

describe("the canvas's reading of the builder's refusals", () => {
  it("a BL-09 refusal keeps the service's exact message and names the edge", () => {
    const error = new ApiError(422, CYCLE, { detail: { code: "cycle", message: CYCLE } });
    expect(refusalOf(error, edge)).toEqual({ id: "refused:a->b", edge, code: "cycle", message: CYCLE });
  });

  it("other answers are not refusals of the edge", () => {
    expect(refusalOf(new ApiError(422, "x", { detail: { code: "task_full", message: "full" } }), edge)).toBeNull();
    expect(refusalOf(new ApiError(403, "no", { detail: "no" }), edge)).toBeNull();
    expect(refusalOf(new Error("network"), edge)).toBeNull();
  });

  it("a 409 edit_conflict carries the message and the current revision", () => {
    const error = new ApiError(409, "m", { detail: { code: "edit_conflict", message: "다른 사용자가…", revision: 9 } });
    expect(conflictOf(error)).toEqual({ message: "다른 사용자가…", revision: 9 });
    expect(conflictOf(new ApiError(409, "m", { detail: { code: "already_placed", message: "m" } }))).toBeNull();
  });

  it("a new refusal of the same edge replaces the shown one", () => {
    const first = { id: "refused:a->b", edge, code: "duplicate" as const, message: "이미 존재하는 연결입니다" };
    const second = { ...first, code: "cycle" as const, message: CYCLE };
    expect(showRefusal([first], second)).toEqual([second]);
  });
});
