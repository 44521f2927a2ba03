"""What the library's HTTP API accepts and answers (its OpenAPI contract)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.bounded_json import BoundedJson
from contracts.events import ComponentSnapshot, ComponentType
from contracts.resources import Resources
from contracts.spec import ImageRef
from services.library.domain import VERSION_PATTERN

_FORBID = ConfigDict(extra="forbid")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
Description = Annotated[str, StringConstraints(max_length=4000)]
Params = BoundedJson
Command = Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]], Field(max_length=64)]


class ComponentRegistration(BaseModel):
    """CL-01."""

    model_config = _FORBID
    name: Name
    image: ImageRef
    description: Description = ""
    version: Version = "1.0.0"
    type: ComponentType = "other"
    resources: Resources = Field(description="default resources, copied when the component is placed")
    params: Params = Field(default_factory=dict)
    command: Command = Field(default_factory=list, description="what a run of this version executes (locally, and in "
                             "its pod when the spec names the version), e.g. "
                             '["python", "-m", "components.rl_agent"]')


class ComponentPatch(BaseModel):
    """CL-04: only the fields given change; a new version is written (given here, or the next one)."""

    model_config = _FORBID
    name: Name | None = None
    image: ImageRef | None = None
    description: Description | None = None
    version: Version | None = None
    type: ComponentType | None = None
    resources: Resources | None = None
    params: Params | None = None
    command: Command | None = None


class Usage(BaseModel):
    app_id: str
    app_name: str
    spec_version: str
    task_id: str
    task_name: str
    library_version: str | None = Field(description="the version of the component this App's spec uses")


class VersionSummary(BaseModel):
    version: str
    changed: list[str] = Field(description="fields that differ from the previous version")
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> "VersionSummary":
        return cls(version=row["version"], changed=row["changed"], created_by=row["created_by"],
                   created_at=row["created_at"])


class VersionView(VersionSummary):
    current: bool
    component: ComponentSnapshot


class _Stamped(ComponentSnapshot):
    model_config = ConfigDict(extra="forbid")
    owner: str | None = Field(description="who may change it besides an admin (null: the platform's own, like the "
                              "seed catalog; only an admin changes it)")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    @staticmethod
    def fields_of(row: asyncpg.Record) -> dict[str, Any]:
        return {**row["snapshot"],
                **{k: row[k] for k in ("owner", "created_by", "created_at", "updated_by", "updated_at")}}


class ComponentSummary(_Stamped):
    used_in_count: int

    @classmethod
    def of(cls, row: asyncpg.Record) -> "ComponentSummary":
        return cls(**cls.fields_of(row), used_in_count=row["used_in_count"])


class ComponentDetail(_Stamped):
    """CL-03: the component, where it is used, and its versions (newest first)."""

    used_in: list[Usage]
    versions: list[VersionSummary]

    @classmethod
    def of(cls, row: asyncpg.Record, used_in: list[asyncpg.Record], versions: list[asyncpg.Record]) -> "ComponentDetail":
        return cls(**cls.fields_of(row), used_in=[Usage(**dict(u)) for u in used_in],
                   versions=[VersionSummary.of(v) for v in versions])
