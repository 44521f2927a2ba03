"""Apps, Tasks and placed Components: the Builder's rules (no I/O).

An App holds Tasks; a Task holds Components placed from the library (keyed by the library id,
so one library component appears at most once per Task) and a workflow DAG between them.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Mapping, Sequence

from contracts.thresholds import Thresholds
from contracts.events import AppDeleted, AppSpecCreated, ComponentSnapshot
from contracts.resources import Resources
from contracts.spec import AppSpec, ImageRef, ImportedApp, SpecComponent, SpecTask, Storage, TrainingConfig, WorkflowEdge
from services.builder import workflow
from services.builder.workflow import Edge
from services.kit import ownership
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.secrets import refs as secret_refs
from services.kit.unit_of_work import Aggregate

SERVICE = "builder"  # the owner a spec's secret references name
AppStatus = Literal["draft", "ready"]
ComponentType = Literal["trainer", "data_loader", "preprocessor", "evaluator", "other"]

# The spec file's own bounds (contracts/spec.py), enforced while editing rather than at generation.
MAX_TASKS = 200
MAX_COMPONENTS_PER_TASK = 200
MAX_EDGES_PER_TASK = 2000


Threshold = Thresholds  # the approval threshold shown per component (BL-06), defined once in contracts


def new_app_id() -> str:
    return f"APP-{secrets.token_hex(3).upper()}"


def task_id(number: int) -> str:
    return f"TASK-{number:03d}"


def default_storage(app_name: str) -> Storage:
    slug = re.sub(r"[^a-z0-9]+", "-", app_name.lower()).strip("-") or "app"
    return Storage(type="distributed", path=f"/training-data/{slug}")


def next_spec_version(wanted: str, used: set[str]) -> str:
    """Spec versions are immutable: a version already written moves on to the next free patch."""
    candidate = wanted
    while candidate in used:
        major, minor, patch = candidate.split(".")
        candidate = f"{major}.{minor}.{int(patch) + 1}"
    return candidate


@dataclass
class PlacedComponent:
    component_id: str
    name: str
    type: ComponentType
    image: ImageRef
    resources: Resources
    params: dict[str, Any] = field(default_factory=dict)
    library_version: str | None = None

    @classmethod
    def from_library(cls, found: ComponentSnapshot, *, name: str | None = None, image: ImageRef | None = None,
                     resources: Resources | None = None, params: dict[str, Any] | None = None) -> "PlacedComponent":
        """BL-01, BL-11: the library's image and defaults unless the author gives others; params merge over them."""
        return cls(component_id=found.component_id, name=name or found.name, type=found.type,
                   image=image or found.image, resources=resources or found.resources,
                   params={**found.params, **(params or {})}, library_version=found.version)

    def upgraded(self, found: ComponentSnapshot) -> "PlacedComponent":
        """CL-05: this placement moved to the library version `found`: its image, type and resources as on
        placement; the placement keeps its name and params (new default params join them)."""
        return PlacedComponent.from_library(found, name=self.name, params=self.params)

    def to_spec(self) -> SpecComponent:
        return SpecComponent(component_id=self.component_id, name=self.name, image=self.image,
                             resources=self.resources, params=self.params, library_version=self.library_version)


@dataclass
class Task:
    task_id: str
    name: str
    imported_from: str | None = None
    components: list[PlacedComponent] = field(default_factory=list)  # in execution order
    workflow: list[Edge] = field(default_factory=list)  # in the order the edges were drawn
    # the App's revision this Task was read or left at, for the client's next If-Match (not part of the spec)
    revision: int | None = field(default=None, compare=False)

    @property
    def order(self) -> list[str]:
        return [c.component_id for c in self.components]

    def component(self, component_id: str) -> PlacedComponent:
        for component in self.components:
            if component.component_id == component_id:
                return component
        raise NotFound(f"component {component_id} is not placed in task {self.task_id}")

    def place(self, component: PlacedComponent) -> None:
        if component.component_id in self.order:
            raise Conflict(f"component {component.component_id} is already placed in task {self.task_id}; "
                           "a task holds each library component once", code="already_placed")
        if len(self.components) >= MAX_COMPONENTS_PER_TASK:
            raise Invalid(f"task {self.task_id} already has {MAX_COMPONENTS_PER_TASK} components", code="task_full")
        self.components.append(component)

    def replace(self, component: PlacedComponent) -> None:
        """The placed component of the same library id, changed, in its place in the order."""
        self.component(component.component_id)
        self.components = [component if c.component_id == component.component_id else c for c in self.components]

    def remove(self, component_id: str) -> None:
        """docs/spec.md §13.3: drop the component, every edge touching it, and close the gap in the order."""
        self.component(component_id)
        self.components = [c for c in self.components if c.component_id != component_id]
        self.workflow = [e for e in self.workflow if component_id not in e]

    def connect(self, source: str, target: str) -> bool:
        """Add an edge (BL-09 checks); returns True when the order had to move to respect it."""
        self.component(source)
        self.component(target)
        workflow.check_new_edge(self.workflow, source, target)
        if len(self.workflow) >= MAX_EDGES_PER_TASK:
            raise Invalid(f"task {self.task_id} already has {MAX_EDGES_PER_TASK} edges", code="task_full")
        self.workflow.append((source, target))
        if workflow.first_conflict(self.order, self.workflow) is None:
            return False
        self._arrange(workflow.topological_order(self.order, self.workflow))
        return True

    def disconnect(self, source: str, target: str) -> None:
        if (source, target) not in self.workflow:
            raise NotFound(f"edge {source} → {target} not found in task {self.task_id}")
        self.workflow.remove((source, target))

    def reorder(self, order: Sequence[str]) -> None:
        current = set(self.order)
        missing = [c for c in self.order if c not in order]
        unknown = [c for c in order if c not in current]
        repeated = sorted({c for c in order if order.count(c) > 1})
        if missing or unknown or repeated:
            parts = [f"{label}: {', '.join(ids)}" for label, ids in
                     (("missing", missing), ("not in the task", unknown), ("repeated", repeated)) if ids]
            raise Invalid(f"order must list every component of task {self.task_id} exactly once ("
                          + "; ".join(parts) + ")", code="order_incomplete")
        conflict = workflow.first_conflict(order, self.workflow)
        if conflict:
            source, target = conflict
            raise Invalid(f"{target} cannot run before {source}: the workflow has the edge {source} → {target}",
                          code="order_conflicts_workflow", edge={"from": source, "to": target})
        self._arrange(order)

    def _arrange(self, order: Sequence[str]) -> None:
        by_id = {c.component_id: c for c in self.components}
        self.components = [by_id[c] for c in order]

    def copy_as(self, new_task_id: str, imported_from: str) -> "Task":
        return Task(task_id=new_task_id, name=self.name, imported_from=imported_from,
                    components=[replace(c, params=dict(c.params)) for c in self.components],
                    workflow=list(self.workflow))

    def problems(self) -> list[str]:
        found = []
        if not self.components:
            found.append(f"task {self.task_id} ({self.name}) has no components")
        try:
            workflow.topological_order(self.order, self.workflow)
        except workflow.WorkflowRejected:
            found.append(f"task {self.task_id} ({self.name}): the workflow has a cycle")
        return found

    def to_spec(self) -> SpecTask:
        return SpecTask(task_id=self.task_id, name=self.name, imported_from=self.imported_from,
                        components=[c.to_spec() for c in self.components],
                        workflow=[WorkflowEdge(**{"from": s, "to": t}) for s, t in self.workflow])


@dataclass
class AppInfo:
    app_id: str
    name: str
    version: str
    status: AppStatus = "draft"
    description: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)
    # the secret env vars: name -> the version of its value (None: declared, no value yet); the values
    # are only in `secret_values`, encrypted (services/kit/secrets.py)
    secret_env_vars: dict[str, int | None] = field(default_factory=dict)
    training_config: TrainingConfig = field(default_factory=TrainingConfig)
    storage: Storage = field(default_factory=Storage)
    test_run_ref: str | None = None
    task_count: int = 0
    component_count: int = 0
    revision: int = 1
    spec_revision: int | None = None  # the revision the latest spec was built from
    latest_spec_version: str | None = None
    created_by: str = ""
    created_at: datetime | None = None
    updated_by: str = ""
    updated_at: datetime | None = None
    owner: str | None = None  # None: the platform's own, only an admin changes it (services/kit/ownership.py)

    def check_may_change(self, user: str, is_admin: bool) -> None:
        """Everyone with a role reads an App; only its owner or an admin changes or deletes it."""
        ownership.check_may_change(f"app {self.app_id}", self.owner, user, is_admin)

    def transfer(self, new_owner: str, is_admin: bool) -> str | None:
        """Give the App to another user (admin only); answers the previous owner."""
        ownership.check_may_transfer(f"app {self.app_id}", self.owner, is_admin)
        previous, self.owner = self.owner, new_owner
        return previous

    @property
    def has_unpublished_changes(self) -> bool:
        return self.spec_revision != self.revision

    @property
    def spec_is_current(self) -> bool:
        """The latest spec was built from this revision: generating again would change nothing."""
        return bool(self.latest_spec_version) and not self.has_unpublished_changes

    def edited(self, changes: Mapping[str, Any]) -> "AppInfo":
        """The App's own fields with `changes` applied: null clears only the test run reference; for the
        other fields it means "unchanged"."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None or k == "test_run_ref"})


@dataclass
class App(Aggregate):
    """The aggregate the Builder's events are about: an App with its Tasks and imports."""

    info: AppInfo
    tasks: list[Task] = field(default_factory=list)
    imported_apps: list[ImportedApp] = field(default_factory=list)

    @property
    def correlation_id(self) -> str:
        return self.info.app_id

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise NotFound(f"task {task_id} not found in app {self.info.app_id}")

    def problems(self) -> list[str]:
        unset = [f"secret env var {name} has no value" for name, version in sorted(self.info.secret_env_vars.items())
                 if version is None]
        if not self.tasks:
            return [f"app {self.info.app_id} has no tasks", *unset]
        return [problem for task in self.tasks for problem in task.problems()] + unset

    def to_spec(self, version: str, created_at: datetime) -> AppSpec:
        """BL-04: the spec file, exactly docs/spec.md §2.2; refuses an App that cannot run."""
        problems = self.problems()
        if problems:
            raise Invalid(f"app {self.info.app_id} cannot become a spec: " + "; ".join(problems),
                          code="app_not_ready", problems=problems)
        info = self.info
        return AppSpec(app_id=info.app_id, name=info.name, version=version, env_vars=info.env_vars,
                       secret_env_vars=secret_refs(SERVICE, info.app_id, info.secret_env_vars),
                       tasks=[t.to_spec() for t in self.tasks], imported_apps=self.imported_apps,
                       training_config=info.training_config, storage=info.storage, created_at=created_at,
                       test_run_ref=info.test_run_ref)

    def publish_spec(self, used_versions: set[str], created_at: datetime) -> AppSpec:
        """BL-04: a new immutable spec version (the next free one); the App becomes ready."""
        version = next_spec_version(self.info.version, used_versions)
        spec = self.to_spec(version, created_at)
        self.info.status, self.info.version = "ready", version
        self.record("app.spec_created", AppSpecCreated(app_id=self.info.app_id, version=version, spec=spec,
                                                       owner=self.info.owner))
        return spec

    def delete(self, user: str, is_admin: bool) -> None:
        """The working copy goes; its spec versions stay."""
        self.info.check_may_change(user, is_admin)
        self.record("app.deleted", AppDeleted(app_id=self.info.app_id, deleted_by=user))


def check_room_for_tasks(info: AppInfo, adding: int) -> None:
    if info.task_count + adding > MAX_TASKS:
        raise Invalid(f"app {info.app_id} would have more than {MAX_TASKS} tasks", code="too_many_tasks")


def check_import(target: App, source: App) -> None:
    """BL-12: an App imports another App's Tasks once, never its own."""
    app_ref = source.info.app_id
    if app_ref == target.info.app_id:
        raise Invalid(f"app {app_ref} cannot import itself", code="import_self")
    if any(imported.app_ref == app_ref for imported in target.imported_apps):
        raise Conflict(f"app {app_ref} is already imported into {target.info.app_id}", code="already_imported")
    if not source.tasks:
        raise Invalid(f"app {app_ref} has no tasks to import", code="nothing_to_import")
    check_room_for_tasks(target.info, len(source.tasks))


@dataclass(frozen=True)
class SpecSummary:
    """BL-05: what the spec list shows about one version."""

    task_count: int
    component_count: int
    largest_component: dict[str, Any] | None
    needs_approval: bool


def summarize(spec: AppSpec, threshold: Threshold) -> SpecSummary:
    largest = spec.largest_component()
    return SpecSummary(
        task_count=len(spec.tasks),
        component_count=len(spec.components()),
        largest_component=None if largest is None else {
            "component_id": largest.component_id, "name": largest.name,
            "resources": largest.resources.model_dump()},
        needs_approval=any(threshold.exceeded_by(c.resources) for c in spec.components()),
    )
