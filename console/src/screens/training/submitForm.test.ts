import type { ResourceDefaults } from "../../api/training";
import { blankForm, filledForm, payloadOf } from "./submitForm";

const defaults: ResourceDefaults = {
  app_id: "APP-990E96", spec_version: "1.0.0", gpu_type: "A100", gpu_count: 4, memory: "128GB", cpu: null, max_runtime: "2h",
  source_component: { component_id: "CL-REF-002", name: "rl-agent" },
  training_config: { episodes: 300, reward_params: { safety_weight: 0.4 }, env_config: { max_temp: 850, simulation_seed: 42 } },
};
const seed = { episodes: 1000, learning_rate: 0.001, batch_size: 64, gamma: 0.99, max_steps_per_episode: 500 };

test("the form takes the largest component's resources and the App's config over the seed's defaults", () => {
  const form = filledForm(blankForm(), defaults, seed);
  expect([form.gpu_type, form.gpu_count, form.memory, form.cpu, form.max_runtime]).toEqual(["A100", "4", "128GB", "", "2h"]);
  expect(form.params).toEqual({ episodes: "300", learning_rate: "0.001", batch_size: "64", gamma: "0.99", max_steps_per_episode: "500" });
  // TR-04: the seed has its own field; the rest of env_config stays JSON
  expect(form.simulation_seed).toBe("42");
  expect(JSON.parse(form.env_config)).toEqual({ max_temp: 850 });
  expect(JSON.parse(form.reward_params)).toEqual({ safety_weight: 0.4 });
});

test("the payload: typed numbers, the envelope as shown, env vars from NAME=value lines", () => {
  const form = { ...filledForm(blankForm(), defaults, seed), name: " nightly ", priority: "high" as const, env_vars: "LOG_LEVEL=debug\n\nAPI_TOKEN=a=b" };
  form.params.episodes = "50";
  const { body, errors } = payloadOf(form);
  expect(errors).toEqual({});
  expect(body).toEqual({
    app_id: "APP-990E96", spec_version: "1.0.0", name: "nightly", priority: "high",
    resources: { gpu_type: "A100", gpu_count: 4, memory: "128GB", max_runtime: "2h" },
    training_config: {
      episodes: 50, learning_rate: 0.001, batch_size: 64, gamma: 0.99, max_steps_per_episode: 500,
      env_config: { max_temp: 850 }, reward_params: { safety_weight: 0.4 }, simulation_seed: 42,
    },
    env_vars: { LOG_LEVEL: "debug", API_TOKEN: "a=b" },
  });
});

test("an empty RL field is left out (the App's value applies); what cannot be sent is refused by field", () => {
  const form = filledForm(blankForm(), defaults, seed);
  form.params.gamma = "";
  expect(payloadOf(form).body?.training_config).not.toHaveProperty("gamma");
  const bad = { ...form, env_config: "{nope", reward_params: "[1]", env_vars: "JUSTANAME" };
  bad.params.batch_size = "abc";
  expect(payloadOf(bad)).toEqual({
    body: null,
    errors: {
      "training_config.batch_size": "Input should be a valid number",
      "training_config.env_config": expect.stringMatching(/^invalid JSON/),
      "training_config.reward_params": "Input should be a valid dictionary",
      env_vars: "line 1: expected NAME=value",
    },
  });
  expect(payloadOf(blankForm()).errors.app_id).toBe("Field required");
});
