// A refused request's messages by form field: FastAPI's 422 list (`loc: ["body", "resources", "memory"]`)
// becomes {"resources.memory": msg}; a domain refusal ({code, message}) goes to the field its message
// starts with when the form names one ("gpu_count 0 is below …"), otherwise to the form as a whole ("").
import { ApiError } from "../api/client";

export type FieldErrors = Record<string, string>;

interface Item {
  loc?: unknown[];
  msg?: unknown;
}

export function fieldErrors(error: unknown, fields: Record<string, string> = {}): FieldErrors {
  if (!(error instanceof ApiError)) return error ? { "": error instanceof Error ? error.message : String(error) } : {};
  const detail = (error.body as { detail?: unknown } | null)?.detail;
  const errors: FieldErrors = {};
  const add = (path: string, message: string) => {
    errors[path] = errors[path] ? `${errors[path]}; ${message}` : message;
  };
  if (Array.isArray(detail)) {
    for (const item of detail as Item[]) {
      const loc = Array.isArray(item?.loc) ? item.loc.filter((part) => part !== "body").map(String) : [];
      add(loc.join("."), String(item?.msg ?? ""));
    }
    return errors;
  }
  // a domain refusal: its message names the field first (services/trainer/domain.check_envelope)
  const message = error.message;
  const first = message.split(/\s/, 1)[0];
  add(fields[first] ?? "", message);
  return errors;
}

/** the message for a field, also when the service names a part of it ("training_config.env_config.x") */
export function errorAt(errors: FieldErrors, path: string): string | undefined {
  const own = errors[path];
  const inner = Object.entries(errors)
    .filter(([key]) => key.startsWith(`${path}.`))
    .map(([key, message]) => `${key.slice(path.length + 1)}: ${message}`);
  const all = [own, ...inner].filter(Boolean);
  return all.length ? all.join("; ") : undefined;
}
