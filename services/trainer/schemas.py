"""What the trainer's HTTP API reads and answers: request bodies and response shapes."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.bounded_json import BoundedJson
from contracts.resources import Duration, GpuCount, Memory
from contracts.workload import Priority
from services.kit.secrets import EnvValue
from services.trainer import domain

_FORBID = ConfigDict(extra="forbid")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ResourceRequest(BaseModel):
    """TR-02: the resource envelope; leave it out to take the App's largest component."""

    model_config = _FORBID
    gpu_type: str = Field(min_length=1, max_length=64)
    gpu_count: GpuCount
    memory: Memory
    cpu: float | None = Field(default=None, gt=0, le=4096)
    max_runtime: Duration = domain.DEFAULT_MAX_RUNTIME


class TrainingParams(BaseModel):
    """TR-03…TR-05. A field left out takes the App's training_config value (itself the TR-03 default)."""

    model_config = _FORBID
    episodes: int | None = Field(default=None, ge=1, le=10_000_000)
    learning_rate: float | None = Field(default=None, gt=0, le=10)
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    gamma: float | None = Field(default=None, gt=0, le=1)
    max_steps_per_episode: int | None = Field(default=None, ge=1, le=10_000_000)
    env_config: BoundedJson | None = Field(default=None, description="simulator parameters (TR-04)")
    reward_params: BoundedJson | None = Field(default=None, description="reward weights (TR-05)")
    simulation_seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="stored as env_config.simulation_seed")

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"simulation_seed"})


class SubmitTraining(BaseModel):
    model_config = _FORBID
    app_id: str = Field(min_length=1, max_length=64)
    spec_version: str | None = Field(default=None, min_length=1, max_length=32, description="default: the latest")
    name: str = Field(default="", max_length=128)
    resources: ResourceRequest | None = None
    training_config: TrainingParams = Field(default_factory=TrainingParams)
    env_vars: dict[str, EnvValue] = Field(default_factory=dict, max_length=200, description=(
        "added to the App's env_vars: name -> value, or {value, secret}; a secret (by default a name with "
        "SECRET, TOKEN, PASSWORD or KEY) is stored encrypted and reaches only the components"))
    priority: Priority = "normal"
    is_training_request: bool = Field(default=True, description="false: a general (non-RL) workload")
    test_run_ref: str | None = Field(default=None, min_length=1, max_length=64,
                                     description="an earlier passed loop test run of this App version")

    @field_validator("env_vars")
    @classmethod
    def _env_names(cls, value: dict[str, EnvValue]) -> dict[str, EnvValue]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
        return value


class AppView(BaseModel):
    app_id: str
    name: str
    version: str
    status: str = "ready"
    task_count: int
    component_count: int
    largest: dict[str, Any] | None = Field(description="the largest single component and its resources")
    version_count: int
    versions: list[str] | None = Field(default=None, description="every spec version, oldest first (detail only)")
    spec: dict[str, Any] | None = Field(default=None, description="the latest spec (detail only)")


class ResourceDefaults(BaseModel):
    app_id: str
    spec_version: str
    gpu_type: str
    gpu_count: int
    memory: str
    cpu: float | None = None
    max_runtime: str
    source_component: dict[str, str]
    training_config: dict[str, Any]


class Submitted(BaseModel):
    workload_id: str
    status: str
    submitted_at: datetime


class CancelRequested(BaseModel):
    workload_id: str
    status: str
    cancel_requested_by: str
    cancel_requested_at: datetime


class TimelineItem(BaseModel):
    at: datetime
    type: str
    producer: str
    summary: str
    details: dict[str, Any]
    event_id: str


class RequestSummary(BaseModel):
    workload_id: str
    app_id: str
    spec_version: str
    name: str
    requester: str
    priority: str
    status: str
    status_label: str
    submitted_at: datetime
    updated_at: datetime
    source: str
    resources: dict[str, Any] | None = None


class RequestDetail(RequestSummary):
    is_training_request: bool
    training_config: dict[str, Any]
    test_run_ref: str | None
    loop_test: dict[str, Any] | None
    final_metrics: dict[str, Any]
    model: dict[str, Any] | None
    outcome: str | None
    cancel_requested_by: str | None
    cancel_requested_at: datetime | None
    spec: dict[str, Any]
    timeline: list[TimelineItem]


class Comparison(BaseModel):
    requests: list[dict[str, Any]] = Field(description=(
        "per request: workload_id, app_id, spec_version, name, status, status_label, training_config, resources, "
        "final_metrics, reward_curve ({component, episodes, rewards, total}: the reward per episode, at most "
        "500 points, or null)"))
    metrics: dict[str, dict[str, Any]] = Field(description="metric → workload_id → value, side by side")


def summary(row: asyncpg.Record, resources: dict[str, Any] | None = None) -> RequestSummary:
    return RequestSummary(
        workload_id=row["workload_id"], app_id=row["app_id"], spec_version=row["spec_version"], name=row["name"],
        requester=row["requester"], priority=row["priority"], status=row["status"],
        status_label=domain.STATUS_LABELS.get(row["status"], row["status"]), submitted_at=row["submitted_at"],
        updated_at=row["updated_at"], source=row["source"], resources=resources,
    )


def detail(row: asyncpg.Record, entries: list[domain.TimelineEntry]) -> RequestDetail:
    workload = row["workload"]
    progress = domain.summarise(entries)
    base = summary(row, workload.get("resources")).model_dump()
    base.update(status=progress.status, status_label=domain.STATUS_LABELS[progress.status])
    return RequestDetail(
        **base, is_training_request=workload.get("isTrainingRequest", True),
        training_config=workload.get("trainingConfig", {}), test_run_ref=workload.get("testRunRef"),
        loop_test=progress.loop_test, final_metrics=progress.final_metrics, model=progress.model,
        outcome=progress.outcome, cancel_requested_by=row["cancel_requested_by"],
        cancel_requested_at=row["cancel_requested_at"], spec=workload.get("spec", {}),
        timeline=[TimelineItem(at=e.occurred_at, type=e.type, producer=e.producer, summary=e.summary,
                               details=e.details, event_id=e.event_id) for e in entries],
    )
