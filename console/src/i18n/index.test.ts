import { describe, expect, it } from "vitest";
import ko from "./ko";
import en from "./en";
import * as builder from "./builder";
import * as library from "./library";
import * as resources from "./resources";
import * as admin from "./admin";
import * as runs from "./runs";
import * as training from "./training";

const AREAS = { builder, library, resources, admin, runs, training };

/** every leaf's dotted path, so two languages can be compared key by key */
function paths(value: unknown, prefix = ""): string[] {
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([key, child]) => paths(child, prefix ? `${prefix}.${key}` : key));
  }
  return [prefix];
}

describe("the console's labels", () => {
  it("no area file takes a top-level key another already uses (the merge would drop one silently)", () => {
    const seen = new Map<string, string>(Object.keys(ko).map((key) => [key, "ko.ts"]));
    for (const [name, area] of Object.entries(AREAS)) {
      for (const key of Object.keys(area.ko)) {
        expect(seen.get(key), `${name}.ts reuses "${key}"`).toBeUndefined();
        seen.set(key, `${name}.ts`);
      }
    }
  });

  it("English has every Korean label, and no other", () => {
    expect(paths(en).sort()).toEqual(paths(ko).sort());
    for (const [name, area] of Object.entries(AREAS)) {
      expect(paths(area.en).sort(), name).toEqual(paths(area.ko).sort());
    }
  });
});
