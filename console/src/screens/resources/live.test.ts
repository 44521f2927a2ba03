import { expect, it } from "vitest";
import { rootsFor } from "../../live/invalidation";
import { historyKey, NODES_KEY, RESOURCES_KEY, WORKLOAD_USAGE_KEY } from "../../api/resources";

it("every event that moves resources refreshes the resource views (no polling for them)", () => {
  for (const type of ["workload.started", "workload.completed", "workload.failed", "workload.cancelled", "looptest.completed"]) {
    for (const key of [RESOURCES_KEY, NODES_KEY, WORKLOAD_USAGE_KEY, historyKey(1)]) {
      expect(rootsFor(type)).toContain(key[0]);
    }
  }
});
