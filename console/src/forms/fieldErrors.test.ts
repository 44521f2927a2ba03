import { ApiError } from "../api/client";
import { errorAt, fieldErrors } from "./fieldErrors";

test("FastAPI's 422 list becomes messages by field path", () => {
  const error = new ApiError(422, "x", {
    detail: [
      { loc: ["body", "resources", "memory"], msg: "Value error, invalid memory value 'xx'" },
      { loc: ["body", "training_config", "episodes"], msg: "Input should be greater than or equal to 1" },
      { loc: ["body", "training_config", "env_config", "a"], msg: "too deep" },
    ],
  });
  const errors = fieldErrors(error);
  expect(errors["resources.memory"]).toBe("Value error, invalid memory value 'xx'");
  expect(errorAt(errors, "training_config.episodes")).toBe("Input should be greater than or equal to 1");
  expect(errorAt(errors, "training_config.env_config")).toBe("a: too deep");
  expect(errorAt(errors, "name")).toBeUndefined();
});

test("a domain refusal goes to the field its message starts with, else to the whole form", () => {
  const body = { detail: { code: "envelope_too_small", message: "gpu_count 0 is below the 1 GPUs component 'data-loader' needs" } };
  const refused = new ApiError(422, body.detail.message, body);
  expect(fieldErrors(refused, { gpu_count: "resources.gpu_count" })).toEqual({ "resources.gpu_count": body.detail.message });
  expect(fieldErrors(new ApiError(403, "component CL-1 belongs to 'kim'", { detail: "component CL-1 belongs to 'kim'" }))).toEqual({
    "": "component CL-1 belongs to 'kim'",
  });
});
