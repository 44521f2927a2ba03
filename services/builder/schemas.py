"""What the Builder's HTTP API accepts and answers (its OpenAPI contract)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.bounded_json import BoundedJson
from contracts.resources import GpuCount, Memory, Resources
from contracts.spec import ImageRef, ImportedApp, Storage, TrainingConfig
from services.kit.secrets import EnvValue, SecretView, views
from services.builder.domain import App, AppInfo, AppStatus, ComponentType, PlacedComponent, Task, Threshold

_FORBID = ConfigDict(extra="forbid")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
SemVer = Annotated[str, StringConstraints(pattern=r"^\d{1,6}\.\d{1,6}\.\d{1,6}$")]
AppRef = Annotated[str, StringConstraints(pattern=r"^APP-[0-9A-F]{6}$")]
ComponentRef = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
EnvKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvVars = Annotated[dict[EnvKey, EnvValue], Field(max_length=500, description=(
    "name -> value, or {value, secret}: a secret's value is stored encrypted and never shown; by default a "
    "name with SECRET, TOKEN, PASSWORD or KEY is a secret (services/kit/secrets.py); a secret given without "
    "a value keeps the one it has"))]
Params = BoundedJson
Description = Annotated[str, StringConstraints(max_length=2000)]


class TrainingConfigBody(TrainingConfig):
    """The training parameters as a client sends them: its free-form parts bounded as every request's are."""

    reward_params: BoundedJson = Field(default_factory=dict)
    env_config: BoundedJson = Field(default_factory=dict)


class AppCreate(BaseModel):
    model_config = _FORBID
    name: Name
    description: Description = ""
    version: SemVer = "1.0.0"
    env_vars: EnvVars = Field(default_factory=dict)
    training_config: TrainingConfigBody = Field(default_factory=TrainingConfigBody)
    storage: Storage | None = Field(default=None, description="default: distributed, /training-data/<app name>")


class AppPatch(BaseModel):
    model_config = _FORBID
    name: Name | None = None
    description: Description | None = None
    version: SemVer | None = Field(default=None, description="the version the next generated spec takes")
    storage: Storage | None = None
    test_run_ref: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class TaskCreate(BaseModel):
    model_config = _FORBID
    name: Name


class ResourcesPatch(BaseModel):
    model_config = _FORBID
    gpu_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    gpu_count: GpuCount | None = None
    memory: Memory | None = None


class Placement(BaseModel):
    """Place a library component; anything given here overrides the library's defaults."""

    model_config = _FORBID
    component_id: ComponentRef
    name: Name | None = None
    image: ImageRef | None = None
    resources: ResourcesPatch | None = None
    params: Params | None = Field(default=None, description="merged over the library's default params")


class ComponentPatch(BaseModel):
    model_config = _FORBID
    name: Name | None = None
    image: ImageRef | None = None
    resources: ResourcesPatch | None = None
    params: Params | None = Field(default=None, description="replaces the component's params")


class OrderBody(BaseModel):
    model_config = _FORBID
    order: list[ComponentRef] = Field(max_length=200, description="every component id of the task, first to run first")


class ImportBody(BaseModel):
    model_config = _FORBID
    app_ref: AppRef


# ---------------------------------------------------------------- answers

class ComponentView(BaseModel):
    component_id: str
    name: str
    type: ComponentType
    image: ImageRef
    resources: Resources
    params: dict[str, Any]
    order: int
    library_version: str | None
    exceeds_threshold: bool

    @classmethod
    def of(cls, component: PlacedComponent, order: int, threshold: Threshold) -> "ComponentView":
        return cls(component_id=component.component_id, name=component.name, type=component.type,
                   image=component.image, resources=component.resources, params=component.params, order=order,
                   library_version=component.library_version,
                   exceeds_threshold=threshold.exceeded_by(component.resources))


REVISION = ('the App revision this answer shows: send it back as If-Match: "<revision>" with the next edit, '
            "which is refused (409 edit_conflict) if someone else edited the App meanwhile")


class EdgeView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str


class TaskView(BaseModel):
    task_id: str
    name: str
    imported_from: str | None
    components: list[ComponentView]
    workflow: list[EdgeView]
    order: list[str]
    revision: int | None = Field(default=None, description=REVISION)

    @classmethod
    def of(cls, task: Task, threshold: Threshold, revision: int | None = None) -> "TaskView":
        return cls(task_id=task.task_id, name=task.name, imported_from=task.imported_from,
                   components=[ComponentView.of(c, i, threshold) for i, c in enumerate(task.components, start=1)],
                   workflow=[EdgeView(from_=s, to=t) for s, t in task.workflow], order=task.order,
                   revision=task.revision if revision is None else revision)


class LargestComponent(BaseModel):
    component_id: str
    name: str
    resources: Resources


OWNER = "who may change it besides an admin (null: the platform's own, only an admin changes it)"


class AppSummary(BaseModel):
    app_id: str
    name: str
    version: str
    status: AppStatus
    task_count: int
    component_count: int
    latest_spec_version: str | None
    has_unpublished_changes: bool
    owner: str | None = Field(description=OWNER)
    updated_at: datetime | None
    largest_component: LargestComponent | None = Field(
        default=None, description="the single component with the most GPUs, then memory, in any Task (BL-05)")


class AppView(BaseModel):
    app_id: str
    name: str
    description: str
    version: str
    status: AppStatus
    env_vars: dict[str, str] = Field(description="the plain env vars with their values")
    secret_env_vars: list[SecretView] = Field(description="the secret env vars: set or not, never their values")
    training_config: TrainingConfig
    storage: Storage
    test_run_ref: str | None
    imported_apps: list[ImportedApp]
    tasks: list[TaskView]
    latest_spec_version: str | None
    has_unpublished_changes: bool = Field(description="edited since the latest spec was generated")
    owner: str | None = Field(description=OWNER)
    created_by: str
    created_at: datetime | None
    updated_by: str
    updated_at: datetime | None
    revision: int = Field(description=REVISION)


def summary(info: AppInfo, largest: "LargestComponent | None" = None) -> AppSummary:
    return AppSummary(app_id=info.app_id, name=info.name, version=info.version, status=info.status,
                      task_count=info.task_count, component_count=info.component_count,
                      latest_spec_version=info.latest_spec_version,
                      has_unpublished_changes=info.has_unpublished_changes, owner=info.owner,
                      updated_at=info.updated_at, largest_component=largest)


def largest_of(placed: list[Any]) -> LargestComponent | None:
    """The component with the most GPUs, then the most memory (the rule of AppSpec.largest_component)."""
    found = [LargestComponent(component_id=r["component_id"], name=r["name"],
                              resources=Resources.model_validate(r["resources"])) for r in placed]
    return max(found, key=lambda c: (c.resources.gpu_count, c.resources.memory_bytes), default=None)


def app_view(app: App, threshold: Threshold) -> AppView:
    info = app.info
    return AppView(app_id=info.app_id, name=info.name, description=info.description, version=info.version,
                   status=info.status, env_vars=info.env_vars,
                   secret_env_vars=views(info.secret_env_vars), training_config=info.training_config,
                   storage=info.storage, test_run_ref=info.test_run_ref, imported_apps=app.imported_apps,
                   tasks=[TaskView.of(task, threshold, info.revision) for task in app.tasks],
                   latest_spec_version=info.latest_spec_version,
                   has_unpublished_changes=info.has_unpublished_changes, owner=info.owner, created_by=info.created_by,
                   created_at=info.created_at, updated_by=info.updated_by, updated_at=info.updated_at,
                   revision=info.revision)


class SpecSummaryView(BaseModel):
    app_id: str
    name: str
    version: str
    created_by: str
    created_at: datetime
    task_count: int
    component_count: int
    largest_component: LargestComponent | None = Field(description="the single component with the most resources")
    needs_approval: bool = Field(description="some component is at or above the approval threshold")
