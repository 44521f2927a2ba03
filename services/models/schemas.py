"""Request and response bodies of the models HTTP API (api.py, alias_api.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.models.domain import Gate


class ModelSummary(BaseModel):
    model_id: str
    name: str
    app_id: str
    app_name: str
    version: int
    workload_id: str
    workload_name: str | None
    created_at: datetime
    stored_at: datetime | None
    size_bytes: int
    file_count: int
    status: str
    store_attempts: int
    store_error: str | None


class ModelFile(BaseModel):
    path: str
    component: str
    size_bytes: int
    sha256: str
    verified_by: str
    download: str


class RunLog(BaseModel):
    component: str
    task_id: str
    component_id: str
    url: str | None = Field(description="where the run log is kept (ST-04)")
    download: str | None = Field(description="the log over HTTP")


class ModelDetail(ModelSummary):
    spec_version: str
    spec: dict[str, Any]
    training_config: dict[str, Any]
    workload: dict[str, Any]
    run_logs: list[RunLog]
    metrics: dict[str, Any]
    files: list[ModelFile]
    storage: dict[str, str]
    aliases: list[str]
    download: str


class AppVersions(BaseModel):
    app_id: str
    versions: list[ModelSummary]


class Comparison(BaseModel):
    models: list[ModelSummary]
    metrics: dict[str, dict[str, float | None]]


# ---------------------------------------------------------------- aliases

class AliasMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=64)
    gate: Gate | None = Field(default=None, description="refuse the move unless the model's metric meets it")
    expected_model_id: str | None = Field(default=None, max_length=64,
                                          description="move only if the alias still points here (compare-and-set)")


class AliasView(BaseModel):
    alias: str
    model_id: str
    version: int
    name: str
    moved_at: datetime
    moved_by: str
    history: list[dict[str, Any]]


class AppAliases(BaseModel):
    app_id: str
    aliases: list[AliasView]
