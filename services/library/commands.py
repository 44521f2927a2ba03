"""What the library can be asked to change."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.kit.messagebus import Command
from services.library.schemas import ComponentRegistration


@dataclass(frozen=True)
class RegisterComponent(Command):
    registration: ComponentRegistration
    user: str


@dataclass(frozen=True)
class UpdateComponent(Command):
    """Only the component's owner or an admin may change it."""

    component_id: str
    changes: dict[str, Any]  # only the fields given
    user: str
    is_admin: bool = False
    role: str | None = None  # the user's role, for the audit record


@dataclass(frozen=True)
class TransferComponent(Command):
    """Give the component to another owner (admin only)."""

    component_id: str
    new_owner: str
    user: str
    is_admin: bool = False
    role: str | None = None


@dataclass(frozen=True)
class SeedCatalog(Command):
    """Register these components if the library is still empty (its first start)."""

    entries: list[ComponentRegistration]
    source: str = "the built-in catalog"  # where the entries were read, for the log
