"""The library's unit of work in memory: components with their versions, and where Apps use them."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from contracts.events import ComponentSnapshot, Event
from contracts.spec import AppSpec
from services.kit.errors import Conflict, NotFound
from services.kit.unit_of_work import Recorded
from services.library import domain
from services.library.domain import Component, Usage
from tests.support.fakes import FakeUnitOfWork, FakeUnitOfWorks



@dataclass
class StoredVersion:
    snapshot: ComponentSnapshot
    changed: list[str]
    created_by: str


@dataclass
class AppUsage:
    spec_created_at: datetime | None
    deleted_at: datetime | None = None


@dataclass
class LibraryState:
    components: dict[str, ComponentSnapshot] = field(default_factory=dict)
    versions: dict[str, list[StoredVersion]] = field(default_factory=dict)  # oldest first
    owners: dict[str, str | None] = field(default_factory=dict)
    transfers: list[tuple[str, str | None, str, str]] = field(default_factory=list)  # component, from, to, by
    last_number: int = 0
    locked_for_seeding: int = 0
    apps: dict[str, AppUsage] = field(default_factory=dict)
    usage: dict[str, list[Usage]] = field(default_factory=dict)  # app id -> what its newest spec places

    def used_in(self, component_id: str) -> list[tuple[str, str]]:
        return [(app_id, u.task_id) for app_id, usages in self.usage.items() for u in usages
                if u.component_id == component_id]


class FakeComponents:
    def __init__(self, state: LibraryState, track: Callable[[Any], Any]) -> None:
        self._state = state
        self._track = track

    async def next_number(self) -> int:
        self._state.last_number += 1
        return self._state.last_number

    def _check_name(self, snapshot: ComponentSnapshot) -> None:
        if any(c.name == snapshot.name and c.component_id != snapshot.component_id
               for c in self._state.components.values()):
            raise Conflict(f"a component named {snapshot.name!r} is already registered", code="name_taken")

    async def add(self, number: int, component: Component, user: str) -> None:
        self._check_name(component.snapshot)
        self._state.components[component.snapshot.component_id] = component.snapshot
        self._state.versions[component.snapshot.component_id] = [StoredVersion(component.snapshot, [], user)]
        self._state.owners[component.snapshot.component_id] = component.owner
        self._track(component)

    async def get(self, component_id: str, *, lock: bool = False) -> Component:
        if component_id not in self._state.components:
            raise NotFound(f"component {component_id} not found")
        used = {v.snapshot.version for v in self._state.versions[component_id]}
        return self._track(Component(self._state.components[component_id], used, self._state.owners[component_id]))

    async def transfer(self, component_id: str, previous: str | None, new_owner: str, by: str) -> None:
        self._state.owners[component_id] = new_owner
        self._state.transfers.append((component_id, previous, new_owner, by))

    async def save(self, component: Component, user: str) -> None:
        self._check_name(component.snapshot)
        cid = component.snapshot.component_id
        self._state.components[cid] = component.snapshot
        self._state.versions[cid].append(StoredVersion(component.snapshot, list(component.changed), user))

    async def any(self) -> bool:
        return bool(self._state.components)

    async def lock_for_seeding(self) -> None:
        self._state.locked_for_seeding += 1


class FakeUsage:
    """As store.record_spec / forget_app: the newest spec wins; a deletion outranks older specs."""

    def __init__(self, state: LibraryState) -> None:
        self._state = state

    async def record_spec(self, spec: AppSpec) -> bool:
        known = self._state.apps.get(spec.app_id)
        if known is not None and ((known.spec_created_at is not None and known.spec_created_at >= spec.created_at)
                                  or (known.deleted_at is not None and known.deleted_at >= spec.created_at)):
            return False
        self._state.apps[spec.app_id] = AppUsage(spec.created_at)
        self._state.usage[spec.app_id] = [u for u in domain.usages(spec) if u.component_id in self._state.components]
        return True

    async def forget_app(self, app_id: str, deleted_at: datetime) -> None:
        known = self._state.apps.setdefault(app_id, AppUsage(None))
        known.deleted_at = max(known.deleted_at or deleted_at, deleted_at)
        self._state.usage.pop(app_id, None)


class FakeLibraryUnitOfWork(FakeUnitOfWork):
    def __init__(self, state: LibraryState, published: list[Recorded] | None = None, *,
                 cause: Event | None = None) -> None:
        super().__init__(published, cause=cause, state=state)
        self.components = FakeComponents(state, self.track)
        self.usage = FakeUsage(state)


def unit_of_works(state: LibraryState) -> FakeUnitOfWorks:
    return FakeUnitOfWorks(lambda published, cause=None: FakeLibraryUnitOfWork(state, published, cause=cause))
