// The component library's API (services/library/api.py, behind the gateway at /api/library).
import { get, patch, post } from "./client";
import type { Page } from "./types";

export const COMPONENT_TYPES = ["trainer", "data_loader", "preprocessor", "evaluator", "other"] as const;
export type ComponentType = (typeof COMPONENT_TYPES)[number];

export interface ComponentResources {
  gpu_type: string;
  gpu_count: number;
  memory: string;
}

/** contracts/events.ComponentSnapshot: what one version of a component is */
export interface ComponentSnapshot {
  component_id: string;
  name: string;
  image: { registry: string; tag: string };
  description: string;
  version: string;
  type: ComponentType;
  resources: ComponentResources;
  params: Record<string, unknown>;
  command: string[];
}

export interface Stamped extends ComponentSnapshot {
  owner: string | null;
  created_by: string;
  created_at: string;
  updated_by: string;
  updated_at: string;
}

export interface ComponentSummary extends Stamped {
  used_in_count: number;
}

export interface Usage {
  app_id: string;
  app_name: string;
  spec_version: string;
  task_id: string;
  task_name: string;
  library_version: string | null;
}

export interface VersionSummary {
  version: string;
  changed: string[];
  created_by: string;
  created_at: string;
}

export interface ComponentDetail extends Stamped {
  used_in: Usage[];
  versions: VersionSummary[];
}

export interface VersionView extends VersionSummary {
  current: boolean;
  component: ComponentSnapshot;
}

/** the body of POST /components (CL-01); PATCH takes any part of it (CL-04) */
export type Registration = Omit<ComponentSnapshot, "component_id">;

export interface Search {
  q?: string;
  type?: string;
  owner?: string;
  page?: number;
  page_size?: number;
}

const BASE = "/api/library/components";
const one = (id: string) => `${BASE}/${encodeURIComponent(id)}`;

export const library = {
  search: (query: Search) => get<Page<ComponentSummary>>(BASE, { ...query }),
  detail: (id: string) => get<ComponentDetail>(one(id)),
  version: (id: string, version: string) => get<VersionView>(`${one(id)}/versions/${encodeURIComponent(version)}`),
  register: (body: Registration) => post<ComponentDetail>(BASE, body),
  update: (id: string, changes: Partial<Registration>) => patch<ComponentDetail>(one(id), changes),
};

/** react-query keys: everything the library screens cache starts with "library" (live/invalidation.ts) */
export const libraryKeys = {
  all: ["library"] as const,
  search: (query: Search) => ["library", "components", query] as const,
  detail: (id: string) => ["library", "component", id] as const,
  version: (id: string, version: string) => ["library", "component", id, "version", version] as const,
};
