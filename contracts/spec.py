"""The App spec file, field for field as docs/spec.md §2.2 writes it (ST-01: the basis of execution)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_serializer

from contracts.bounded_json import ComposedJson
from contracts.resources import Resources, parse_memory

_STRICT = ConfigDict(extra="forbid", populate_by_name=True)
_ID = Field(min_length=1, max_length=64)


class ImageRef(BaseModel):
    model_config = _STRICT

    registry: str = Field(min_length=1, max_length=255)
    tag: str = Field(min_length=1, max_length=128)

    def reference(self) -> str:
        return f"{self.registry}:{self.tag}"


class SpecComponent(BaseModel):
    model_config = _STRICT

    component_id: str = _ID
    name: str = Field(min_length=1, max_length=128)
    image: ImageRef
    resources: Resources
    params: ComposedJson = Field(default_factory=dict)
    library_version: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "the library version this placement was made from (CL-05): what a run of this spec is to execute"))

    @model_serializer(mode="wrap")
    def _omit_unknown_version(self, handler):  # specs written before versions were recorded stay as they were
        data = handler(self)
        if data.get("library_version") is None:
            data.pop("library_version", None)
        return data


class WorkflowEdge(BaseModel):
    model_config = _STRICT

    from_: str = Field(alias="from", min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=64)


class SpecTask(BaseModel):
    model_config = _STRICT

    task_id: str = _ID
    name: str = Field(min_length=1, max_length=128)
    imported_from: str | None = None
    components: list[SpecComponent] = Field(default_factory=list, max_length=200)
    workflow: list[WorkflowEdge] = Field(default_factory=list, max_length=2000)


class ImportedApp(BaseModel):
    model_config = _STRICT

    app_ref: str = _ID
    name: str = Field(min_length=1, max_length=128)


class TrainingConfig(BaseModel):
    """RL training parameters (docs/spec.md §4.2), snake_case as in the spec file."""

    model_config = _STRICT

    episodes: int = Field(default=1000, ge=1, le=10_000_000)
    learning_rate: float = Field(default=0.001, gt=0, le=10)
    batch_size: int = Field(default=64, ge=1, le=1_000_000)
    gamma: float = Field(default=0.99, gt=0, le=1)
    max_steps_per_episode: int = Field(default=500, ge=1, le=10_000_000)
    reward_params: ComposedJson = Field(default_factory=dict)
    env_config: ComposedJson = Field(default_factory=dict)


class Storage(BaseModel):
    model_config = _STRICT

    type: str = Field(default="distributed", max_length=64)
    path: str = Field(default="", max_length=1024)


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, the spec's `2026-02-09T09:00:00.000Z`."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SecretRef(BaseModel):
    """Where a secret env var's value is (never the value): the service that stores it, the App or workload
    it belongs to, and the version of its value; the scheduler's runner resolves it when a component starts."""

    model_config = _STRICT

    service: Literal["builder", "trainer"]
    owner: str = _ID
    version: int = Field(ge=1)


class AppSpec(BaseModel):
    model_config = _STRICT

    app_id: str = _ID
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=32)
    env_vars: dict[str, str] = Field(default_factory=dict, max_length=500)
    secret_env_vars: dict[str, SecretRef] = Field(default_factory=dict, max_length=500, description=(
        "env vars whose values are secrets: a reference each, resolved only when a component starts"))
    tasks: list[SpecTask] = Field(default_factory=list, max_length=200)
    imported_apps: list[ImportedApp] = Field(default_factory=list)
    training_config: TrainingConfig = Field(default_factory=TrainingConfig)
    storage: Storage = Field(default_factory=Storage)
    created_at: datetime
    test_run_ref: str | None = None

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @field_serializer("created_at")
    def _created_at(self, value: datetime) -> str:
        return format_timestamp(value)

    @model_serializer(mode="wrap")
    def _omit_absent_test_run(self, handler):  # docs/spec.md §2.2: no test_run_ref unless one is attached
        data = handler(self)
        if data.get("test_run_ref") is None:
            data.pop("test_run_ref", None)
        if not data.get("secret_env_vars"):  # a spec without secrets is the file docs/spec.md §2.2 shows
            data.pop("secret_env_vars", None)
        return data

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def components(self) -> list[SpecComponent]:
        return [component for task in self.tasks for component in task.components]

    def largest_component(self) -> SpecComponent | None:
        """The single component with the most GPUs, then the most memory (TR-02)."""
        return max(
            self.components(),
            key=lambda c: (c.resources.gpu_count, parse_memory(c.resources.memory)),
            default=None,
        )
