"""What a person or the store worker asks the models service to do (each has one handler in handlers.py)."""
from __future__ import annotations

from dataclasses import dataclass

from services.kit.messagebus import Command
from services.models.domain import Gate


@dataclass(frozen=True)
class MoveAlias(Command):
    """Point an App's alias at one of its stored models, if it meets `gate` and the alias still points
    at `expected_model_id` (when given); only the App's owner or an admin (`role`) may."""

    app_id: str
    alias: str
    model_id: str
    by: str
    gate: Gate | None = None
    expected_model_id: str | None = None
    role: str | None = None  # the mover's role: an admin moves any App's aliases; also for the audit record


@dataclass(frozen=True)
class RollBackAlias(Command):
    """Return an alias to the model it pointed at before its newest move not yet undone."""

    app_id: str
    alias: str
    by: str
    role: str | None = None


@dataclass(frozen=True)
class MarkModelStored(Command):
    """Every file of the model is copied and verified by the worker `owner`, which holds its lease."""

    model_id: str
    owner: str


@dataclass(frozen=True)
class RecordStoreFailure(Command):
    """An attempt of the worker `owner` to store the model failed; the next is due in `retry_in` seconds."""

    model_id: str
    owner: str
    reason: str
    retry_in: float
