"""The global component library's rules (CL-01…CL-06), no I/O.

A component is published as a `ComponentSnapshot`; every change writes a new version and
keeps the old one, so what an App placed can always be traced back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from contracts.events import ComponentChanged, ComponentSnapshot
from contracts.spec import AppSpec
from services.kit import ownership
from services.kit.errors import Conflict
from services.kit.unit_of_work import Aggregate

VERSION_PATTERN = r"^\d{1,6}(\.\d{1,6}){0,3}([-+][0-9A-Za-z.-]{1,32})?$"
_NUMERIC_CORE = re.compile(r"^[\d.]+")


def component_id(number: int) -> str:
    return f"CL-REF-{number:03d}"


def bump(version: str) -> str:
    """The next version after `version`: its last number plus one ("1.0.0-rc1" → "1.0.1")."""
    parts = _NUMERIC_CORE.match(version).group(0).split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


def changed_fields(old: ComponentSnapshot, new: ComponentSnapshot) -> list[str]:
    before, after = old.model_dump(), new.model_dump()
    return [name for name in after if name != "version" and before[name] != after[name]]


@dataclass(frozen=True)
class Revision:
    component: ComponentSnapshot
    changed: list[str]


def revise(current: ComponentSnapshot, changes: dict[str, Any], used_versions: set[str]) -> Revision | None:
    """CL-04/CL-05: apply an update as a new version; None when it changes nothing.

    A new version string may be given; otherwise the current one moves to the next free one.
    A version string is never reused, so (component_id, version) always means one snapshot.
    """
    proposed = ComponentSnapshot.model_validate({**current.model_dump(), **changes})
    changed = changed_fields(current, proposed)
    retagged = proposed.version != current.version
    if not changed and not retagged:
        return None
    if retagged:
        if proposed.version in used_versions:
            raise Conflict(f"component {current.component_id} already had version {proposed.version}; "
                           "versions are never reused", code="version_exists")
        return Revision(proposed, changed)
    version = bump(current.version)
    while version in used_versions:
        version = bump(version)
    return Revision(proposed.model_copy(update={"version": version}), changed)


@dataclass
class Component(Aggregate):
    """A library component: its current snapshot, every version string it ever had, and its owner (None:
    the platform's own, like the seed catalog; only an admin changes it)."""

    snapshot: ComponentSnapshot
    used_versions: set[str] = field(default_factory=set)
    owner: str | None = None
    changed: list[str] = field(default_factory=list)  # what the latest revision changed

    @property
    def correlation_id(self) -> str:
        return self.snapshot.component_id

    @classmethod
    def register(cls, number: int, fields: dict[str, Any], owner: str | None) -> "Component":
        """CL-01: a new component, its first version."""
        snapshot = ComponentSnapshot(component_id=component_id(number), **fields)
        component = cls(snapshot, {snapshot.version}, owner)
        component.record("component.registered", ComponentChanged(component=snapshot))
        return component

    def update(self, changes: dict[str, Any], user: str, is_admin: bool) -> bool:
        """CL-04/CL-05: the changes as a new version, by the owner or an admin; False when they change nothing."""
        ownership.check_may_change(f"component {self.correlation_id}", self.owner, user, is_admin)
        revision = revise(self.snapshot, changes, self.used_versions)
        if revision is None:
            return False
        self.snapshot, self.changed = revision.component, revision.changed
        self.used_versions.add(revision.component.version)
        self.record("component.updated", ComponentChanged(component=revision.component))
        return True

    def transfer(self, new_owner: str, is_admin: bool) -> str | None:
        """Give the component to another user (admin only); answers the previous owner."""
        ownership.check_may_transfer(f"component {self.correlation_id}", self.owner, is_admin)
        previous, self.owner = self.owner, new_owner
        return previous


@dataclass(frozen=True)
class Usage:
    component_id: str
    task_id: str
    task_name: str
    library_version: str | None = None  # the version the placement uses (CL-05)


def usages(spec: AppSpec) -> list[Usage]:
    """CL-03 `used_in`: each (component, task) pair the spec places, with the version it uses."""
    return [Usage(c.component_id, task.task_id, task.name, c.library_version)
            for task in spec.tasks for c in task.components]
