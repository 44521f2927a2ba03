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
    component_id: str
    changes: dict[str, Any]  # only the fields given
    user: str


@dataclass(frozen=True)
class SeedCatalog(Command):
    """Register these components if the library is still empty (its first start)."""

    entries: list[ComponentRegistration]
    source: str = "the built-in catalog"  # where the entries were read, for the log
