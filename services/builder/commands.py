"""What the Builder can be asked to change: one command per edit of an App, its Tasks or its spec.

Every edit names the App and who makes it (the App's revision records them), and whether they act as an
admin (only the App's owner or an admin may edit it); Task and component edits name their Task too."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.spec import ImageRef, Storage, TrainingConfig
from services.kit.messagebus import Command


@dataclass(frozen=True)
class CreateApp(Command):
    name: str
    version: str
    user: str
    description: str = ""
    env_vars: dict[str, Any] = field(default_factory=dict)  # name -> value or EnvVarInput (services/kit/secrets.py)
    training_config: TrainingConfig = field(default_factory=TrainingConfig)
    storage: Storage | None = None  # None: derived from the name


@dataclass(frozen=True)
class SealSecretEnvVars(Command):
    """Move the values of plain env vars whose names say they are secrets (Apps written before secrets
    existed) into encrypted storage, as the platform; at every start, a no-op once none are left."""


@dataclass(frozen=True)
class AppEdit(Command):
    app_id: str
    user: str
    is_admin: bool = field(default=False, kw_only=True)
    role: str | None = field(default=None, kw_only=True)  # the user's role, for the audit record
    # the App revision the edit was made from (If-Match); None: applied whatever the App's revision (revision.py)
    expected_revision: int | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ChangeApp(AppEdit):
    """Change some of the App's own fields (name, version, env vars, training config, ...)."""

    changes: dict[str, Any]


@dataclass(frozen=True)
class DeleteApp(AppEdit):
    pass


@dataclass(frozen=True)
class TransferApp(AppEdit):
    """Give the App to another owner (admin only); its content and revision stay as they are."""

    new_owner: str


@dataclass(frozen=True)
class ImportApp(AppEdit):
    app_ref: str


@dataclass(frozen=True)
class RemoveImport(AppEdit):
    app_ref: str


@dataclass(frozen=True)
class GenerateSpec(AppEdit):
    pass


@dataclass(frozen=True)
class AddTask(AppEdit):
    name: str


@dataclass(frozen=True)
class TaskEdit(AppEdit):
    task_id: str


@dataclass(frozen=True)
class RenameTask(TaskEdit):
    name: str


@dataclass(frozen=True)
class DeleteTask(TaskEdit):
    pass


@dataclass(frozen=True)
class PlaceComponent(TaskEdit):
    """Place a library component; what is given overrides the library's defaults."""

    component_id: str
    authorization: str | None = None  # the caller's own token, for a lookup at the library
    name: str | None = None
    image: ImageRef | None = None
    resources: dict[str, Any] | None = None  # resource fields to override
    params: dict[str, Any] | None = None  # merged over the library's defaults


@dataclass(frozen=True)
class ChangeComponent(TaskEdit):
    component_id: str
    name: str | None = None
    image: ImageRef | None = None
    resources: dict[str, Any] | None = None  # resource fields to change
    params: dict[str, Any] | None = None  # replaces the component's params


@dataclass(frozen=True)
class UpgradeComponent(TaskEdit):
    """Move a placed component to the library's current version (CL-05)."""

    component_id: str
    authorization: str | None = None  # the caller's own token, for a lookup at the library


@dataclass(frozen=True)
class RemoveComponent(TaskEdit):
    component_id: str


@dataclass(frozen=True)
class ConnectComponents(TaskEdit):
    source: str
    target: str


@dataclass(frozen=True)
class DisconnectComponents(TaskEdit):
    source: str
    target: str


@dataclass(frozen=True)
class ReorderComponents(TaskEdit):
    order: list[str]
