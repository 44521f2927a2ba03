import type { Me } from "../../api/types";
import type { ComponentDetail } from "../../api/library";
import { changesOf, formOf, registrationOf, blankForm } from "./componentForm";
import { mayEdit, mayRegister } from "./rules";

const me = (user: string, role: Me["role"]): Me => ({ user, display_name: user, email: null, role, via: "session", kind: "person" });

test("a component is changed by its owner or an admin; the platform's own by an admin only", () => {
  expect(mayEdit(me("kim", "researcher"), "kim")).toBeNull();
  expect(mayEdit(me("lee", "researcher"), "kim")).toEqual({ reason: "library.why.ownerOnly", values: { owner: "kim" } });
  expect(mayEdit(me("lee", "researcher"), null)).toEqual({ reason: "library.why.platformOwned" });
  expect(mayEdit(me("root", "admin"), null)).toBeNull();
  expect(mayEdit(me("kim", "viewer"), "kim")).toEqual({ reason: "why.viewerReadOnly" });
  expect(mayRegister(me("park", "viewer"))).toEqual({ reason: "why.viewerReadOnly" });
  expect(mayRegister(me("kim", "researcher"))).toBeNull();
});

const current: ComponentDetail = {
  component_id: "CL-REF-011", name: "probe", image: { registry: "r/probe", tag: "1.0" }, description: "d", version: "1.0.0",
  type: "evaluator", resources: { gpu_type: "A100", gpu_count: 1, memory: "16GB" }, params: { a: 1 }, command: ["python", "-m", "x"],
  owner: "kim", created_by: "kim", created_at: "", updated_by: "kim", updated_at: "", used_in: [], versions: [],
};

test("an edit sends only what changed, and no version unless one is typed", () => {
  const form = { ...formOf(current), description: "better", tag: "1.1" };
  expect(changesOf(form, current)).toEqual({ changes: { description: "better", image: { registry: "r/probe", tag: "1.1" } }, errors: null });
  expect(changesOf(formOf(current), current).changes).toEqual({});
  expect(changesOf({ ...formOf(current), version: "2.0.0" }, current).changes).toEqual({ version: "2.0.0" });
});

test("a registration is the whole component; params must be a JSON object", () => {
  const form = { ...blankForm({ version: "1.0.0", type: "other" }), name: "x", registry: "r", tag: "1", gpu_type: "A100", gpu_count: "2", memory: "8GB", command: "python\n -m \n\nx" };
  expect(registrationOf(form).body).toMatchObject({ resources: { gpu_type: "A100", gpu_count: 2, memory: "8GB" }, command: ["python", "-m", "x"], params: {} });
  expect(registrationOf({ ...form, params: "[]" }).errors).toEqual({ params: "invalid JSON: expected a JSON object" });
});
