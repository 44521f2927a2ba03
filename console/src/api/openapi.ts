// The services' request models as the merged OpenAPI document carries them (GET /api/openapi.json), so a
// form takes its defaults and limits from the service instead of repeating them; the service still
// validates and its 422 messages are shown by field (forms/fieldErrors.ts).
import { useQuery } from "@tanstack/react-query";
import { get } from "./client";

export interface JsonSchema {
  type?: string;
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  maxItems?: number;
  maxProperties?: number;
  required?: string[];
  properties?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  $ref?: string;
  [key: string]: unknown;
}

export interface OpenApi {
  components: { schemas: Record<string, JsonSchema> };
}

/** the document rarely changes while the console is open: fetched once per session */
export function useOpenApi() {
  return useQuery({
    queryKey: ["openapi"],
    queryFn: () => get<OpenApi>("/api/openapi.json"),
    staleTime: Infinity,
    gcTime: Infinity,
  });
}

/** a named model ("trainer.TrainingParams"), or an empty schema when the document lacks it */
export function schemaOf(doc: OpenApi | undefined, name: string): JsonSchema {
  return doc?.components?.schemas?.[name] ?? {};
}

/** follow a `$ref` and unwrap `X | None` (`anyOf: [X, {type: null}]`) to X */
export function resolve(doc: OpenApi | undefined, schema: JsonSchema | undefined): JsonSchema {
  if (!schema) return {};
  if (schema.$ref) {
    const name = schema.$ref.replace("#/components/schemas/", "");
    return resolve(doc, { ...schemaOf(doc, name), ...withoutRef(schema) });
  }
  if (schema.anyOf) {
    const concrete = schema.anyOf.filter((s) => s.type !== "null");
    if (concrete.length === 1) {
      const { anyOf: _, ...rest } = schema;
      return resolve(doc, { ...rest, ...concrete[0] });
    }
  }
  return schema;
}

function withoutRef(schema: JsonSchema): JsonSchema {
  const { $ref: _, ...rest } = schema;
  return rest;
}

/** one property of a model, resolved */
export function property(doc: OpenApi | undefined, model: string | JsonSchema, name: string): JsonSchema {
  const parent = typeof model === "string" ? schemaOf(doc, model) : resolve(doc, model);
  return resolve(doc, parent.properties?.[name]);
}

/** the attributes of an <input> for a schema: its numeric bounds, length and step */
export function inputLimits(schema: JsonSchema): Record<string, string | number> {
  const limits: Record<string, string | number> = {};
  const minimum = schema.minimum ?? schema.exclusiveMinimum;
  if (minimum !== undefined) limits.min = minimum;
  if (schema.maximum !== undefined) limits.max = schema.maximum;
  else if (schema.exclusiveMaximum !== undefined) limits.max = schema.exclusiveMaximum;
  if (schema.maxLength !== undefined) limits.maxLength = schema.maxLength;
  if (schema.minLength !== undefined && schema.minLength > 0) limits.minLength = schema.minLength;
  if (schema.type === "integer") limits.step = 1;
  if (schema.type === "number") limits.step = "any";
  return limits;
}

/** "1 ≤ x ≤ 10000000", "0 < x ≤ 1", "≤ 128 chars": the limits as a hint beside the field */
export function rangeText(schema: JsonSchema): string {
  const low =
    schema.minimum !== undefined ? `${schema.minimum} ≤ ` : schema.exclusiveMinimum !== undefined ? `${schema.exclusiveMinimum} < ` : "";
  const high =
    schema.maximum !== undefined ? ` ≤ ${schema.maximum}` : schema.exclusiveMaximum !== undefined ? ` < ${schema.exclusiveMaximum}` : "";
  if (low || high) return `${low}x${high}`;
  if (schema.maxLength !== undefined) return `≤ ${schema.maxLength}`;
  return "";
}

/** the schema's own check of one value, in the service's words where it has them (null: fine) */
export function checkValue(schema: JsonSchema, value: unknown): string | null {
  if (value === undefined || value === null || value === "") return null;
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "Input should be a valid number";
    if (schema.type === "integer" && !Number.isInteger(value)) return "Input should be a valid integer";
    if (schema.minimum !== undefined && value < schema.minimum) return `Input should be greater than or equal to ${schema.minimum}`;
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) return `Input should be greater than ${schema.exclusiveMinimum}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `Input should be less than or equal to ${schema.maximum}`;
    if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) return `Input should be less than ${schema.exclusiveMaximum}`;
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) return `String should have at least ${schema.minLength} characters`;
    if (schema.maxLength !== undefined && value.length > schema.maxLength) return `String should have at most ${schema.maxLength} characters`;
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) return `String should match pattern '${schema.pattern}'`;
  }
  return null;
}
