"""The workload as docs/spec.md §4.3 and §5.2 extend it: camelCase on the wire."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from contracts.bounded_json import ComposedJson
from contracts.resources import Duration, GpuCount, Memory
from contracts.spec import AppSpec, TrainingConfig

_CAMEL = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

Priority = Literal["high", "normal", "low"]
LoopTestStatus = Literal["pending", "running", "passed", "failed"]


class WireTrainingConfig(BaseModel):
    """trainingConfig.{episodes, learningRate, batchSize, gamma, maxStepsPerEpisode, envConfig, rewardParams}."""

    model_config = _CAMEL

    episodes: int = Field(default=1000, ge=1, le=10_000_000)
    learning_rate: float = Field(default=0.001, gt=0, le=10)
    batch_size: int = Field(default=64, ge=1, le=1_000_000)
    gamma: float = Field(default=0.99, gt=0, le=1)
    max_steps_per_episode: int = Field(default=500, ge=1, le=10_000_000)
    env_config: ComposedJson = Field(default_factory=dict)
    reward_params: ComposedJson = Field(default_factory=dict)

    @classmethod
    def from_spec(cls, config: TrainingConfig) -> "WireTrainingConfig":
        return cls(**config.model_dump())

    def to_spec(self) -> TrainingConfig:
        return TrainingConfig(**self.model_dump())


class RequestedResources(BaseModel):
    """The request's resource envelope (TR-02): the GPUs/memory asked for and the run-time limit."""

    model_config = _CAMEL

    gpu_type: str = Field(min_length=1, max_length=64)
    gpu_count: GpuCount
    memory: Memory
    cpu: float | None = Field(default=None, gt=0, le=4096)
    max_runtime: Duration = "2h"


class LoopTest(BaseModel):
    """docs/spec.md §5.2: pending → running → passed|failed."""

    model_config = _CAMEL

    status: LoopTestStatus = "pending"
    episodes: int | None = None
    results: dict[str, Any] | None = None
    executed_by: str | None = None
    executed_at: str | None = None


class Workload(BaseModel):
    model_config = _CAMEL

    workload_id: str = Field(min_length=1, max_length=64)
    app_id: str = Field(min_length=1, max_length=64)
    spec_version: str = Field(min_length=1, max_length=32)
    name: str = Field(default="", max_length=128)
    requester: str = Field(min_length=1, max_length=255)  # a whole token subject (services/kit/auth.py MAX_SUBJECT)
    priority: Priority = "normal"
    submitted_at: datetime
    resources: RequestedResources
    is_training_request: bool = True
    training_config: WireTrainingConfig = Field(default_factory=WireTrainingConfig)
    test_run_ref: str | None = None
    spec: AppSpec

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
