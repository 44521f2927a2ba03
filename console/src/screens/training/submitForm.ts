// The training request form (TR-02…TR-06) as the inputs hold it, its defaults, and the request body it
// becomes. Defaults: the App's largest component for resources and the App's own training config, which
// is itself the seed's §4.2 defaults unless the App changed them; where the App has none, the defaults of
// the builder's TrainingConfig model in the OpenAPI document (the same §4.2 values, not repeated here).
import type { ResourceDefaults, SubmitTraining, TrainingConfig } from "../../api/training";
import type { Priority } from "../../api/types";
import type { FieldErrors } from "../../forms/fieldErrors";

export const RL_PARAMS = ["episodes", "learning_rate", "batch_size", "gamma", "max_steps_per_episode"] as const;
export type RlParam = (typeof RL_PARAMS)[number];

export interface SubmitForm {
  app_id: string;
  spec_version: string;
  name: string;
  priority: Priority;
  gpu_type: string;
  gpu_count: string;
  memory: string;
  cpu: string;
  max_runtime: string;
  params: Record<RlParam, string>;
  simulation_seed: string;
  env_config: string;
  reward_params: string;
  env_vars: string;
}

export const FIELD_PATHS = {
  gpu_type: "resources.gpu_type", gpu_count: "resources.gpu_count", memory: "resources.memory",
  cpu: "resources.cpu", max_runtime: "resources.max_runtime", simulation_seed: "training_config.simulation_seed",
  env_config: "training_config.env_config", reward_params: "training_config.reward_params",
} as const;

/** a domain refusal's first word → the field it is about (services/trainer/domain.check_envelope) */
export const REFUSAL_FIELDS: Record<string, string> = {
  gpu_count: "resources.gpu_count", memory: "resources.memory", app: "app_id", version: "spec_version",
};

export function blankForm(priority: Priority = "normal"): SubmitForm {
  return {
    app_id: "", spec_version: "", name: "", priority, gpu_type: "", gpu_count: "", memory: "", cpu: "", max_runtime: "",
    params: { episodes: "", learning_rate: "", batch_size: "", gamma: "", max_steps_per_episode: "" },
    simulation_seed: "", env_config: "{}", reward_params: "{}", env_vars: "",
  };
}

const text = (value: unknown) => (value === undefined || value === null ? "" : String(value));
const json = (value: unknown) => JSON.stringify(value ?? {}, null, 2);

/** the form filled for an App: its largest component's resources and its training config (§4.2 fallbacks) */
export function filledForm(form: SubmitForm, defaults: ResourceDefaults, fallback: TrainingConfig): SubmitForm {
  const config = { ...fallback, ...defaults.training_config };
  const { simulation_seed, ...envConfig } = (config.env_config ?? {}) as Record<string, unknown>;
  return {
    ...form,
    app_id: defaults.app_id,
    spec_version: defaults.spec_version,
    gpu_type: defaults.gpu_type,
    gpu_count: text(defaults.gpu_count),
    memory: defaults.memory,
    cpu: text(defaults.cpu),
    max_runtime: defaults.max_runtime,
    params: Object.fromEntries(RL_PARAMS.map((key) => [key, text(config[key])])) as Record<RlParam, string>,
    simulation_seed: text(simulation_seed),
    env_config: json(envConfig),
    reward_params: json(config.reward_params),
  };
}

function number(value: string): number | undefined {
  return value.trim() === "" ? undefined : Number(value);
}

function object(value: string, path: string, errors: FieldErrors): Record<string, unknown> | undefined {
  if (!value.trim()) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    errors[path] = "Input should be a valid dictionary";
  } catch (error) {
    errors[path] = `invalid JSON: ${(error as Error).message}`;
  }
  return undefined;
}

/** `NAME=value` lines (TR-04's env vars); a name with SECRET/TOKEN/PASSWORD/KEY is stored as a secret by the service */
export function envVarsOf(lines: string, errors: FieldErrors): Record<string, string> {
  const vars: Record<string, string> = {};
  lines.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf("=");
    if (at <= 0) {
      errors.env_vars = `line ${i + 1}: expected NAME=value`;
      return;
    }
    vars[line.slice(0, at).trim()] = line.slice(at + 1);
  });
  return vars;
}

/** the request body; errors only for what cannot be sent at all (JSON that does not parse, a number that is not one) */
export function payloadOf(form: SubmitForm): { body: SubmitTraining | null; errors: FieldErrors } {
  const errors: FieldErrors = {};
  if (!form.app_id) errors.app_id = "Field required";
  const raw: Record<string, string> = {
    "resources.gpu_count": form.gpu_count,
    "resources.cpu": form.cpu,
    "training_config.simulation_seed": form.simulation_seed,
    ...Object.fromEntries(RL_PARAMS.map((key) => [`training_config.${key}`, form.params[key]])),
  };
  const numbers: Record<string, number | undefined> = {};
  for (const [key, value] of Object.entries(raw)) {
    numbers[key] = number(value);
    if (Number.isNaN(numbers[key])) errors[key] = "Input should be a valid number";
  }
  const env_config = object(form.env_config, "training_config.env_config", errors);
  const reward_params = object(form.reward_params, "training_config.reward_params", errors);
  const env_vars = envVarsOf(form.env_vars, errors);
  if (Object.keys(errors).length) return { body: null, errors };

  const training_config: TrainingConfig = {};
  for (const key of RL_PARAMS) {
    const value = numbers[`training_config.${key}`];
    if (value !== undefined) training_config[key] = value;
  }
  if (env_config) training_config.env_config = env_config;
  if (reward_params) training_config.reward_params = reward_params;
  const seed = numbers["training_config.simulation_seed"];
  if (seed !== undefined) training_config.simulation_seed = seed;
  const body: SubmitTraining = { app_id: form.app_id, priority: form.priority, training_config };
  if (form.spec_version) body.spec_version = form.spec_version;
  if (form.name.trim()) body.name = form.name.trim();
  // the envelope is sent as shown: filled from the largest component, possibly edited (TR-02)
  body.resources = {
    gpu_type: form.gpu_type.trim(),
    gpu_count: numbers["resources.gpu_count"] as number,
    memory: form.memory.trim(),
    ...(numbers["resources.cpu"] !== undefined ? { cpu: numbers["resources.cpu"] } : {}),
    ...(form.max_runtime.trim() ? { max_runtime: form.max_runtime.trim() } : {}),
  };
  if (Object.keys(env_vars).length) body.env_vars = env_vars;
  return { body, errors };
}
