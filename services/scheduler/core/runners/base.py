"""The runner interface: how the scheduler starts, watches, stops and tails one component run."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Protocol

# Called with (run_id, line) for every output line; may be sync or async.
LogSink = Callable[[str, str], "Awaitable[None] | None"]
# The values of a run's secret env vars (name -> value), from the references in `ComponentRun.secret_env`:
# called by the runner as it starts the run and nowhere else, so a value lives only in the component.
SecretResolver = Callable[["ComponentRun"], Awaitable[Mapping[str, str]]]

SUCCEEDED = "succeeded"
FAILED = "failed"
STOPPED = "stopped"
LOST = "lost"  # the run vanished or its exit status cannot be known

RUN_ID_ENV = "AVATAR_RUN_ID"


class RunnerError(Exception):
    """The runner could not start (or find) a run: bad command, API refusal, …"""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    tag: str = "latest"

    def __str__(self) -> str:
        return f"{self.registry}:{self.tag}"


@dataclass(frozen=True)
class ComponentRun:
    workload_id: str
    component_id: str
    name: str
    image: ImageRef | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # env var name -> where its secret value is (opaque to the runner; its SecretResolver reads them)
    secret_env: Mapping[str, Any] = field(default_factory=dict)
    gpu_indices: tuple[int, ...] = ()
    node_name: str = ""
    memory_bytes: int = 0
    cpu: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    run_id: str = ""  # default: "<workload_id>.<component_id>"; use one per attempt

    def __post_init__(self) -> None:
        if not self.run_id:
            object.__setattr__(self, "run_id", f"{self.workload_id}.{self.component_id}")
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "gpu_indices", tuple(int(i) for i in self.gpu_indices))

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_indices)


@dataclass(frozen=True)
class RunHandle:
    run_id: str
    ref: str  # runner-specific: process-group id (local) or pod name (Kubernetes)


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int | None
    reason: str  # SUCCEEDED | FAILED | STOPPED | LOST, optionally ": detail"

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.reason.startswith(SUCCEEDED)


@dataclass(frozen=True)
class GpuUsage:
    """Measured GPU usage of a run; a figure the runner cannot measure is None."""

    memory_bytes: int | None    # GPU memory its processes hold
    utilization: float | None   # mean percent busy of the GPUs it was given
    busy: int | None            # how many of those GPUs are in use


@dataclass(frozen=True)
class Usage:
    """Measured (never allocated) usage of a run at one moment."""

    memory_rss_bytes: int
    cpu_seconds: float          # CPU time consumed so far by the live processes
    cpu_cores: float | None     # average cores since the previous sample, None on the first
    processes: int
    sampled_at: float
    gpu: GpuUsage | None = None  # None where GPUs cannot be measured (no nvidia-smi)


class Runner(Protocol):
    async def start(self, run: ComponentRun) -> RunHandle: ...

    async def wait(self, handle: RunHandle) -> RunOutcome: ...

    async def stop(self, handle: RunHandle, grace_seconds: float | None = None) -> None: ...

    def logs(self, handle: RunHandle, *, follow: bool = True) -> AsyncIterator[str]: ...

    async def list_live(self) -> set[str]: ...

    async def attach(self, run_id: str) -> RunHandle | None: ...

    async def usage(self, handle: RunHandle) -> Usage | None: ...


def safe_name(text: str, limit: int = 63) -> str:
    """Lower-case DNS-1123-ish token for file and object names."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "run"


async def resolve_secrets(resolver: SecretResolver | None, run: ComponentRun) -> dict[str, str]:
    if not run.secret_env:
        return {}
    if resolver is None:
        raise RunnerError(f"run {run.run_id} has secret env vars and this runner cannot resolve them")
    values = dict(await resolver(run))
    missing = sorted(set(run.secret_env) - set(values))
    if missing:
        raise RunnerError(f"run {run.run_id}: no value for the secret env var(s) {', '.join(missing)}")
    return values


async def deliver(sink: LogSink | None, run_id: str, line: str) -> None:
    if sink is None:
        return
    result = sink(run_id, line)
    if result is not None and hasattr(result, "__await__"):
        await result
