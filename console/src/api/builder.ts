// The builder's and the library's API as the Builder screens use it (services/builder/schemas.py,
// services/library/schemas.py, services/approval GET /thresholds). Every edit sends the App revision it
// was made from as If-Match; the builder refuses it with 409 edit_conflict when someone else edited first.
import { api, get, post } from "./client";
import type { Page } from "./types";

export type ComponentType = "trainer" | "data_loader" | "preprocessor" | "evaluator" | "other";
export const COMPONENT_TYPES: ComponentType[] = ["trainer", "data_loader", "preprocessor", "evaluator", "other"];

export interface ImageRef {
  registry: string;
  tag: string;
}

export interface ComponentResources {
  gpu_type: string;
  gpu_count: number;
  memory: string;
}

export interface PlacedComponent {
  component_id: string;
  name: string;
  type: ComponentType;
  image: ImageRef;
  resources: ComponentResources;
  params: Record<string, unknown>;
  order: number;
  library_version: string | null;
  exceeds_threshold: boolean;
}

export interface Edge {
  from: string;
  to: string;
}

export interface TaskView {
  task_id: string;
  name: string;
  imported_from: string | null;
  components: PlacedComponent[];
  workflow: Edge[];
  order: string[];
  revision: number | null;
}

export interface LargestComponent {
  component_id: string;
  name: string;
  resources: ComponentResources;
}

export interface AppSummary {
  app_id: string;
  name: string;
  version: string;
  status: "draft" | "ready";
  task_count: number;
  component_count: number;
  latest_spec_version: string | null;
  has_unpublished_changes: boolean;
  owner: string | null;
  updated_at: string | null;
  largest_component: LargestComponent | null;
}

export interface SecretEnvVar {
  name: string;
  secret: true;
  set: boolean;
}

export interface AppView extends Omit<AppSummary, "task_count" | "component_count" | "largest_component"> {
  description: string;
  env_vars: Record<string, string>;
  secret_env_vars: SecretEnvVar[];
  imported_apps: { app_ref: string; name: string }[];
  tasks: TaskView[];
  created_by: string;
  updated_by: string;
  revision: number;
}

export interface SpecSummary {
  app_id: string;
  name: string;
  version: string;
  created_by: string;
  created_at: string;
  task_count: number;
  component_count: number;
  largest_component: LargestComponent | null;
  needs_approval: boolean;
}

export interface LibraryComponent {
  component_id: string;
  name: string;
  description: string;
  version: string;
  type: ComponentType;
  image: ImageRef;
  resources: ComponentResources;
  params: Record<string, unknown>;
}

export interface Thresholds {
  gpu_count: number;
  memory: string;
}

/** an env var as the App page edits it: a secret keeps its value unless a new one is typed */
export type EnvInput = string | { value?: string; secret: boolean };

export interface ComponentChanges {
  name?: string;
  image?: ImageRef;
  resources?: Partial<ComponentResources>;
  params?: Record<string, unknown>;
}

const B = "/api/builder";
const enc = encodeURIComponent;
const app = (appId: string) => `${B}/apps/${enc(appId)}`;
const task = (appId: string, taskId: string) => `${app(appId)}/tasks/${enc(taskId)}`;

/** the If-Match header naming the revision an edit was made from (none: applied whatever the revision) */
export const ifMatch = (revision: number | null | undefined): Record<string, string> =>
  revision === null || revision === undefined ? {} : { "If-Match": `"${revision}"` };

export const builderApi = {
  listApps: (page = 1, pageSize = 50) => get<Page<AppSummary>>(`${B}/apps`, { page, page_size: pageSize }),
  getApp: (appId: string) => get<AppView>(app(appId)),
  createApp: (name: string, description: string) => post<AppView>(`${B}/apps`, { name, description }),
  putEnvVars: (appId: string, vars: Record<string, EnvInput>, revision: number) =>
    api<AppView>("PUT", `${app(appId)}/env-vars`, vars, undefined, ifMatch(revision)),
  importApp: (appId: string, appRef: string, revision: number) =>
    api<AppView>("POST", `${app(appId)}/imports`, { app_ref: appRef }, undefined, ifMatch(revision)),
  removeImport: (appId: string, appRef: string, revision: number) =>
    api<AppView>("DELETE", `${app(appId)}/imports/${enc(appRef)}`, undefined, undefined, ifMatch(revision)),

  getTask: (appId: string, taskId: string) => get<TaskView>(task(appId, taskId)),
  addTask: (appId: string, name: string, revision: number) =>
    api<TaskView>("POST", `${app(appId)}/tasks`, { name }, undefined, ifMatch(revision)),
  renameTask: (appId: string, taskId: string, name: string, revision: number) =>
    api<TaskView>("PATCH", task(appId, taskId), { name }, undefined, ifMatch(revision)),
  deleteTask: (appId: string, taskId: string, revision: number) =>
    api<null>("DELETE", task(appId, taskId), undefined, undefined, ifMatch(revision)),
  place: (appId: string, taskId: string, body: { component_id: string } & ComponentChanges, revision: number | null) =>
    api<TaskView>("POST", `${task(appId, taskId)}/components`, body, undefined, ifMatch(revision)),
  patchComponent: (appId: string, taskId: string, componentId: string, changes: ComponentChanges, revision: number | null) =>
    api<TaskView>("PATCH", `${task(appId, taskId)}/components/${enc(componentId)}`, changes, undefined, ifMatch(revision)),
  removeComponent: (appId: string, taskId: string, componentId: string, revision: number | null) =>
    api<TaskView>("DELETE", `${task(appId, taskId)}/components/${enc(componentId)}`, undefined, undefined, ifMatch(revision)),
  connect: (appId: string, taskId: string, edge: Edge, revision: number | null) =>
    api<TaskView>("POST", `${task(appId, taskId)}/edges`, edge, undefined, ifMatch(revision)),
  disconnect: (appId: string, taskId: string, edge: Edge, revision: number | null) =>
    api<TaskView>("DELETE", `${task(appId, taskId)}/edges`, undefined, { from: edge.from, to: edge.to }, ifMatch(revision)),
  setOrder: (appId: string, taskId: string, order: string[], revision: number | null) =>
    api<TaskView>("PUT", `${task(appId, taskId)}/order`, { order }, undefined, ifMatch(revision)),
  diagramUrl: (appId: string, taskId: string, revision: number | null) =>
    `${task(appId, taskId)}/diagram.svg${revision === null ? "" : `?rev=${revision}`}`,

  generateSpec: (appId: string) => post<Record<string, unknown>>(`${app(appId)}/spec`),
  getSpec: (appId: string, version?: string) => get<Record<string, unknown>>(`${app(appId)}/spec`, { version }),
  specUrl: (appId: string, version: string) => `${app(appId)}/spec?version=${enc(version)}`,
  listSpecs: (appId: string) => get<Page<SpecSummary>>(`${B}/specs`, { app_id: appId, page_size: 100 }),

  searchLibrary: (q: string, type: ComponentType | "") =>
    get<Page<LibraryComponent>>("/api/library/components", { q: q.trim() || undefined, type, page_size: 100 }),
  thresholds: () => get<Thresholds>("/api/approval/thresholds"),
};

export type BuilderApi = typeof builderApi;
