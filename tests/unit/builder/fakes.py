"""The Builder's unit of work in memory: its repositories keep Apps, Tasks, spec versions and the library
read model in plain objects, answering copies as the database answers rows."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable

from contracts.events import ComponentSnapshot, Event
from contracts.spec import AppSpec, ImportedApp
from services.builder.domain import App, AppInfo, PlacedComponent, SpecSummary, Task
from services.kit.errors import Invalid, NotFound, Unavailable
from services.kit.unit_of_work import Recorded
from tests.support.fakes import FakeUnitOfWork, FakeUnitOfWorks

_OWN_FIELDS = ("name", "description", "version", "status", "env_vars", "training_config", "storage", "test_run_ref")


@dataclass
class StoredSpec:
    spec: AppSpec
    revision: int
    summary: SpecSummary
    created_by: str


@dataclass
class BuilderState:
    apps: dict[str, App] = field(default_factory=dict)
    next_task_number: dict[str, int] = field(default_factory=dict)
    specs: dict[str, list[StoredSpec]] = field(default_factory=dict)  # oldest first; they outlive their App
    library: dict[str, tuple[ComponentSnapshot, datetime]] = field(default_factory=dict)
    transfers: list[tuple[str, str | None, str, str]] = field(default_factory=list)  # app, from, to, by

    def app(self, app_id: str) -> App:
        try:
            return self.apps[app_id]
        except KeyError:
            raise NotFound(f"app {app_id} not found") from None

    def info(self, app_id: str) -> AppInfo:
        """The App's fields as the store computes them: counts and the latest spec."""
        app = self.app(app_id)
        latest = (self.specs.get(app_id) or [None])[-1]
        return replace(copy.deepcopy(app.info), task_count=len(app.tasks),
                       component_count=sum(len(t.components) for t in app.tasks),
                       spec_revision=latest.revision if latest else None,
                       latest_spec_version=latest.spec.version if latest else None)

    def task(self, app_id: str, task_id: str) -> Task:
        return self.app(app_id).task(task_id)


class FakeApps:
    def __init__(self, state: BuilderState, track: Callable[[Any], Any]) -> None:
        self._state = state
        self._track = track
        self.locked: list[str] = []

    async def id_taken(self, app_id: str) -> bool:
        return app_id in self._state.apps or app_id in self._state.specs

    async def add(self, info: AppInfo) -> None:
        self._state.apps[info.app_id] = App(info=copy.deepcopy(info))
        self._state.next_task_number[info.app_id] = 1

    async def get(self, app_id: str, *, lock: bool = False) -> App:
        app = self._state.app(app_id)
        return self._track(App(info=self._state.info(app_id), tasks=copy.deepcopy(app.tasks),
                               imported_apps=copy.deepcopy(app.imported_apps)))

    async def info(self, app_id: str, *, lock: bool = False) -> AppInfo:
        info = self._state.info(app_id)
        if lock:
            self.locked.append(app_id)
        return info

    async def lock(self, app_ids: list[str]) -> None:
        self.locked.extend(sorted(app_ids))

    async def save(self, info: AppInfo) -> None:
        stored = self._state.app(info.app_id)
        stored.info = replace(stored.info, **{name: copy.deepcopy(getattr(info, name)) for name in _OWN_FIELDS})

    async def touch(self, app_id: str, user: str) -> None:
        info = self._state.app(app_id).info
        info.revision += 1
        info.updated_by = user

    async def transfer(self, app_id: str, previous: str | None, new_owner: str, by: str) -> None:
        self._state.app(app_id).info.owner = new_owner
        self._state.transfers.append((app_id, previous, new_owner, by))

    async def delete(self, app_id: str) -> None:
        self._state.apps.pop(app_id, None)

    async def add_import(self, app_id: str, imported: ImportedApp) -> None:
        self._state.app(app_id).imported_apps.append(imported)

    async def remove_import(self, app_id: str, app_ref: str) -> None:
        app = self._state.app(app_id)
        app.tasks = [t for t in app.tasks if t.imported_from != app_ref]
        app.imported_apps = [i for i in app.imported_apps if i.app_ref != app_ref]

    async def drop_import_if_unused(self, app_id: str, app_ref: str) -> None:
        app = self._state.app(app_id)
        if not any(t.imported_from == app_ref for t in app.tasks):
            app.imported_apps = [i for i in app.imported_apps if i.app_ref != app_ref]

    async def spec_versions(self, app_id: str) -> set[str]:
        return {stored.spec.version for stored in self._state.specs.get(app_id, [])}

    async def add_spec(self, spec: AppSpec, revision: int, summary: SpecSummary, user: str) -> None:
        self._state.specs.setdefault(spec.app_id, []).append(StoredSpec(spec, revision, summary, user))

    async def spec_file(self, app_id: str, version: str | None) -> dict[str, Any] | None:
        found = [s.spec for s in self._state.specs.get(app_id, []) if version is None or s.spec.version == version]
        return found[-1].to_wire() if found else None


class FakeTasks:
    def __init__(self, state: BuilderState) -> None:
        self._state = state

    async def take_numbers(self, app_id: str, count: int) -> int:
        first = self._state.next_task_number[app_id]
        self._state.next_task_number[app_id] = first + count
        return first

    async def add(self, app_id: str, number: int, task: Task) -> None:
        self._state.app(app_id).tasks.append(copy.deepcopy(task))

    async def get(self, app_id: str, task_id: str) -> Task:
        return copy.deepcopy(self._state.task(app_id, task_id))

    async def rename(self, app_id: str, task: Task) -> None:
        self._state.task(app_id, task.task_id).name = task.name

    async def delete(self, app_id: str, task_id: str) -> None:
        app = self._state.app(app_id)
        app.tasks = [t for t in app.tasks if t.task_id != task_id]

    async def add_component(self, app_id: str, task_id: str, component: PlacedComponent, position: int) -> None:
        self._state.task(app_id, task_id).components.insert(position - 1, copy.deepcopy(component))

    async def save_component(self, app_id: str, task_id: str, component: PlacedComponent) -> None:
        stored = self._state.task(app_id, task_id)
        stored.components = [copy.deepcopy(component) if c.component_id == component.component_id else c
                             for c in stored.components]

    async def remove_component(self, app_id: str, task_id: str, component_id: str) -> None:
        stored = self._state.task(app_id, task_id)
        stored.components = [c for c in stored.components if c.component_id != component_id]
        stored.workflow = [e for e in stored.workflow if component_id not in e]  # ON DELETE CASCADE

    async def save_order(self, app_id: str, task: Task) -> None:
        stored = self._state.task(app_id, task.task_id)
        by_id = {c.component_id: c for c in stored.components}
        stored.components = [by_id[c] for c in task.order]

    async def add_edge(self, app_id: str, task_id: str, source: str, target: str) -> None:
        self._state.task(app_id, task_id).workflow.append((source, target))

    async def remove_edge(self, app_id: str, task_id: str, source: str, target: str) -> None:
        self._state.task(app_id, task_id).workflow.remove((source, target))


class FakeLibraryReadModel:
    def __init__(self, state: BuilderState) -> None:
        self._state = state

    async def get(self, component_id: str) -> ComponentSnapshot | None:
        known = self._state.library.get(component_id)
        return None if known is None else known[0]

    async def remember(self, snapshot: ComponentSnapshot, as_of: datetime) -> None:
        known = self._state.library.get(snapshot.component_id)
        if known is None or known[1] < as_of:
            self._state.library[snapshot.component_id] = (snapshot, as_of)


class FakeBuilderUnitOfWork(FakeUnitOfWork):
    def __init__(self, state: BuilderState, published: list[Recorded] | None = None, *,
                 cause: Event | None = None) -> None:
        super().__init__(published, cause=cause, state=state)
        self.apps = FakeApps(state, self.track)
        self.tasks = FakeTasks(state)
        self.library = FakeLibraryReadModel(state)


class FakeLibrary:
    """The component library's HTTP API: answers what it holds, refuses the rest, or is down."""

    def __init__(self, *components: ComponentSnapshot, down: bool = False) -> None:
        self.components = {c.component_id: c for c in components}
        self.down = down
        self.asked: list[tuple[str, str | None]] = []

    async def fetch(self, component_id: str, authorization: str | None) -> ComponentSnapshot:
        self.asked.append((component_id, authorization))
        if self.down:
            raise Unavailable(f"the component library did not answer for {component_id}")
        if component_id not in self.components:
            raise Invalid(f"unknown library component {component_id}", code="unknown_component")
        return self.components[component_id]


def unit_of_works(state: BuilderState) -> FakeUnitOfWorks:
    return FakeUnitOfWorks(lambda published, cause=None: FakeBuilderUnitOfWork(state, published, cause=cause))
