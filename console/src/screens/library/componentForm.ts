// The register/edit form's values (strings, as the inputs hold them) and what they become on the wire:
// the whole registration for CL-01, only the changed fields for CL-04 (the service writes a new version).
import type { ComponentDetail, Registration } from "../../api/library";
import type { FieldErrors } from "../../forms/fieldErrors";

export interface ComponentForm {
  name: string;
  registry: string;
  tag: string;
  description: string;
  version: string;
  type: string;
  gpu_type: string;
  gpu_count: string;
  memory: string;
  params: string;
  command: string;
}

/** the fields as the service names them in a 422 (`loc`), for Field's error lookup */
export const PATHS: Record<keyof ComponentForm, string> = {
  name: "name", registry: "image.registry", tag: "image.tag", description: "description", version: "version",
  type: "type", gpu_type: "resources.gpu_type", gpu_count: "resources.gpu_count", memory: "resources.memory",
  params: "params", command: "command",
};

export function blankForm(defaults: { version?: unknown; type?: unknown }): ComponentForm {
  return {
    name: "", registry: "", tag: "", description: "", version: String(defaults.version ?? "1.0.0"),
    type: String(defaults.type ?? "other"), gpu_type: "", gpu_count: "0", memory: "", params: "{}", command: "",
  };
}

export function formOf(c: ComponentDetail): ComponentForm {
  return {
    name: c.name, registry: c.image.registry, tag: c.image.tag, description: c.description, version: "",
    type: c.type, gpu_type: c.resources.gpu_type, gpu_count: String(c.resources.gpu_count), memory: c.resources.memory,
    params: JSON.stringify(c.params, null, 2), command: c.command.join("\n"),
  };
}

type Parsed = { body: Registration; errors: null } | { body: null; errors: FieldErrors };

/** what the form says as a registration; errors only for what cannot be sent at all (JSON, a number) */
export function registrationOf(form: ComponentForm): Parsed {
  const errors: FieldErrors = {};
  let params: Record<string, unknown> = {};
  try {
    const value: unknown = JSON.parse(form.params.trim() || "{}");
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("expected a JSON object");
    params = value as Record<string, unknown>;
  } catch (error) {
    errors.params = `invalid JSON: ${(error as Error).message}`;
  }
  const count = form.gpu_count.trim() === "" ? NaN : Number(form.gpu_count);
  if (!Number.isInteger(count)) errors["resources.gpu_count"] = "Input should be a valid integer";
  if (Object.keys(errors).length) return { body: null, errors };
  return {
    errors: null,
    body: {
      name: form.name.trim(),
      image: { registry: form.registry.trim(), tag: form.tag.trim() },
      description: form.description,
      version: form.version.trim(),
      type: form.type as Registration["type"],
      resources: { gpu_type: form.gpu_type.trim(), gpu_count: count, memory: form.memory.trim() },
      params,
      command: form.command.split("\n").map((line) => line.trim()).filter(Boolean),
    },
  };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** CL-04: only what differs from the current version; an empty version lets the service pick the next */
export function changesOf(form: ComponentForm, current: ComponentDetail): { changes: Partial<Registration> | null; errors: FieldErrors | null } {
  const parsed = registrationOf({ ...form, version: form.version || current.version });
  if (parsed.errors) return { changes: null, errors: parsed.errors };
  const body = parsed.body;
  const changes: Partial<Registration> = {};
  if (body.name !== current.name) changes.name = body.name;
  if (!same(body.image, current.image)) changes.image = body.image;
  if (body.description !== current.description) changes.description = body.description;
  if (form.version.trim() && body.version !== current.version) changes.version = body.version;
  if (body.type !== current.type) changes.type = body.type;
  if (!same(body.resources, current.resources)) changes.resources = body.resources;
  if (!same(body.params, current.params)) changes.params = body.params;
  if (!same(body.command, current.command)) changes.command = body.command;
  return { changes, errors: null };
}
