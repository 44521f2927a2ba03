"""The scheduler's rules, free of I/O: jobs and their runs, DAG readiness, the component env
contract, failure reasons and loop-test results.

A *job* is one schedulable unit: a workload run (job id = workload id) or a loop test of a
workload. A job has one *run* per spec component (a general loop test: one per component and
round; its rounds run one after another). Tasks are independent; inside a Task a component
is ready when every `workflow` predecessor has succeeded.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from contracts.events import RunRecord
from contracts.resources import parse_duration
from contracts.spec import AppSpec, SpecComponent, SpecTask
from contracts.workload import Workload
from services.scheduler.core.demand import ComponentDemand

JOB_TERMINAL = frozenset({"completed", "failed", "cancelled"})
JOB_ACTIVE = frozenset({"waiting", "running", "stopping"})
RUN_LIVE = frozenset({"starting", "running"})
RUN_DONE = frozenset({"succeeded", "failed", "stopped", "skipped"})

# Loop tests go ahead of all other work of their class: their queue rank is their submission
# time moved this far into the past (about 317 years: below zero, before any real submission),
# so among themselves they keep submission order.
LOOPTEST_HEAD_START_S = 1e10
# A user's env_vars never override what the platform sets per component.
RESERVED_ENV_PREFIXES = ("AVATAR_",)
RESERVED_ENV = frozenset({"CUDA_VISIBLE_DEVICES"})


def workload_job_id(workload_id: str) -> str:
    return workload_id


def looptest_job_id(workload_id: str, test_run_id: str) -> str:
    return f"LT:{workload_id}:{test_run_id}"


def run_id_for(job_id: str, round_: int, task_id: str, component_id: str) -> str:
    return f"{job_id}/{round_}/{task_id}/{component_id}"


def looptest_rank(submitted_ts: float) -> float:
    return submitted_ts - LOOPTEST_HEAD_START_S


def max_runtime_seconds(workload: Workload) -> int:
    return parse_duration(workload.resources.max_runtime)


def job_runtime_limit(workload: Workload, rounds: int) -> int:
    """A general loop test repeats the whole DAG `rounds` times, each within max_runtime."""
    return max_runtime_seconds(workload) * max(1, rounds)


# ---------------------------------------------------------------- locations

def _base(workload_id: str, test_run_id: str | None, round_: int | None) -> str:
    if test_run_id is None:
        return workload_id
    return f"{workload_id}/looptest/{test_run_id}/run-{round_ or 1}"


def output_prefix(bucket: str, workload_id: str, task_id: str, component_id: str, *,
                  test_run_id: str | None = None, round_: int | None = None) -> str:
    return f"s3://{bucket}/{_base(workload_id, test_run_id, round_)}/{task_id}/{component_id}/"


def log_key(workload_id: str, task_id: str, component_id: str, *, test_run_id: str | None = None,
            round_: int | None = None) -> str:
    """logs/<workload>/<task>/<component>.log: the task keeps two tasks' uses of one library
    component apart (the same component id may appear in several tasks)."""
    return f"logs/{_base(workload_id, test_run_id, round_)}/{task_id}/{component_id}.log"


# ---------------------------------------------------------------- planning

@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    round: int
    seq: int
    task_id: str
    component_id: str
    name: str
    output_prefix: str


def plan_runs(spec: AppSpec, *, job_id: str, workload_id: str, staging_bucket: str, rounds: int = 1,
              test_run_id: str | None = None) -> list[PlannedRun]:
    planned = []
    for round_ in range(1, rounds + 1):
        seq = 0
        for task in spec.tasks:
            for component in task.components:
                seq += 1
                planned.append(PlannedRun(
                    run_id=run_id_for(job_id, round_, task.task_id, component.component_id),
                    round=round_, seq=seq, task_id=task.task_id, component_id=component.component_id,
                    name=component.name,
                    output_prefix=output_prefix(staging_bucket, workload_id, task.task_id, component.component_id,
                                                test_run_id=test_run_id, round_=round_ if test_run_id else None),
                ))
    return planned


def predecessors(task: SpecTask) -> dict[str, list[str]]:
    """component id -> its direct upstream component ids, in edge order."""
    known = {c.component_id for c in task.components}
    preds: dict[str, list[str]] = {c.component_id: [] for c in task.components}
    for edge in task.workflow:
        if edge.from_ in known and edge.to in known and edge.from_ not in preds[edge.to]:
            preds[edge.to].append(edge.from_)
    return preds


def find_component(spec: AppSpec, task_id: str, component_id: str) -> tuple[SpecTask, SpecComponent]:
    for task in spec.tasks:
        if task.task_id == task_id:
            for component in task.components:
                if component.component_id == component_id:
                    return task, component
    raise KeyError(f"{task_id}/{component_id} is not in spec {spec.app_id} v{spec.version}")


@dataclass(frozen=True)
class RunState:
    run_id: str
    round: int
    task_id: str
    component_id: str
    status: str

    @classmethod
    def of(cls, run: Mapping[str, Any]) -> "RunState":
        return cls(run["run_id"], run["round"], run["task_id"], run["component_id"], run["status"])


def current_round(runs: Iterable[RunState]) -> int | None:
    """The lowest round that still has unfinished runs (rounds run one after another)."""
    open_rounds = [r.round for r in runs if r.status not in RUN_DONE]
    return min(open_rounds) if open_rounds else None


def ready_runs(spec: AppSpec, runs: Sequence[RunState]) -> list[str]:
    """Pending runs whose Task predecessors (same round) have all succeeded, in spec order."""
    round_ = current_round(runs)
    if round_ is None:
        return []
    status = {(r.task_id, r.component_id): r.status for r in runs if r.round == round_}
    ready = []
    for task in spec.tasks:
        preds = predecessors(task)
        for component in task.components:
            key = (task.task_id, component.component_id)
            if status.get(key) != "pending":
                continue
            if all(status.get((task.task_id, p)) == "succeeded" for p in preds[component.component_id]):
                ready.append(next(r.run_id for r in runs if r.round == round_
                                  and (r.task_id, r.component_id) == key))
    return ready


def all_succeeded(runs: Iterable[RunState]) -> bool:
    runs = list(runs)
    return bool(runs) and all(r.status == "succeeded" for r in runs)


def all_done(runs: Iterable[RunState]) -> bool:
    return all(r.status in RUN_DONE for r in runs)


def round_done(runs: Iterable[RunState], round_: int) -> bool:
    return all(r.status in RUN_DONE for r in runs if r.round == round_)


# ---------------------------------------------------------------- demand and env

def demand_for(component: SpecComponent, *, cpu: float) -> ComponentDemand:
    """The spec gives GPUs and memory per component; CPU comes from the request (or a default)."""
    return ComponentDemand.from_resources(component.resources, cpu=cpu)


def component_cpu(workload: Workload, default_cpu: float) -> float:
    return float(workload.resources.cpu) if workload.resources.cpu else default_cpu


def training_config(workload: Workload, *, episodes: int | None = None) -> dict[str, Any]:
    """The workload's trainingConfig, snake_case as in the spec file; a loop test sets episodes."""
    config = workload.training_config.to_spec().model_dump(mode="json")
    if episodes is not None:
        config["episodes"] = episodes
    return config


def user_env(env_vars: Mapping[str, str]) -> dict[str, str]:
    return {k: str(v) for k, v in env_vars.items()
            if not k.startswith(RESERVED_ENV_PREFIXES) and k not in RESERVED_ENV}


def component_env(*, workload: Workload, task_id: str, component: SpecComponent, output_prefix: str,
                  input_prefixes: Sequence[str], training: Mapping[str, Any], s3_endpoint: str,
                  s3_credentials: tuple[str, str] | None) -> dict[str, str]:
    """The env contract of components/README.md. `s3_credentials` None = the runner injects
    them itself (Kubernetes: from a Secret)."""
    env = user_env(workload.spec.env_vars)
    env.update({
        "AVATAR_WORKLOAD_ID": workload.workload_id,
        "AVATAR_COMPONENT_ID": component.component_id,
        "AVATAR_COMPONENT_NAME": component.name,
        "AVATAR_TASK_ID": task_id,
        "AVATAR_PARAMS": json.dumps(component.params, separators=(",", ":")),
        "AVATAR_TRAINING_CONFIG": json.dumps(dict(training), separators=(",", ":")),
        "AVATAR_INPUT_PREFIXES": json.dumps(list(input_prefixes), separators=(",", ":")),
        "AVATAR_OUTPUT_PREFIX": output_prefix,
        "AVATAR_S3_ENDPOINT": s3_endpoint,
    })
    if s3_credentials:
        env["AVATAR_S3_ACCESS_KEY"], env["AVATAR_S3_SECRET_KEY"] = s3_credentials
    return env


# ---------------------------------------------------------------- reasons

def component_failure_reason(name: str, component_id: str, exit_code: int | None, last_line: str | None,
                             detail: str | None = None) -> str:
    """Names the component, its exit code (or why there is none) and its last log line."""
    if exit_code is None:
        reason = f"component {name} ({component_id}) ended without an exit code"
        if detail:
            reason += f" ({detail})"
    else:
        reason = f"component {name} ({component_id}) exited with exit code {exit_code}"
    if last_line:
        reason += f": {last_line.strip()[:500]}"
    return reason


def start_failure_reason(name: str, component_id: str, error: str) -> str:
    return f"component {name} ({component_id}) could not start: {error[:500]}"


def timeout_reason(limit_s: int) -> str:
    return f"timeout: exceeded max_runtime {format_seconds(limit_s)}"


def unplaceable_reason(name: str, component_id: str, demand: ComponentDemand) -> str:
    gpus = f"{demand.gpu_count}×{demand.gpu_type}" if demand.gpu_count else "no GPU"
    return (f"component {name} ({component_id}) needs {gpus}, {demand.memory_bytes / 1e9:g}GB memory and "
            f"{demand.cpu:g} CPU on one node; no node in the inventory is that large")


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---------------------------------------------------------------- loop-test results

def rl_rewards(metrics: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[float]:
    """The trainer's per-episode rewards: the first metrics.json with a numeric `rewards` list,
    preferring components of library type `trainer`. `metrics` = [(component type, metrics)]."""
    ordered = sorted(metrics, key=lambda item: item[0] != "trainer")
    for _, m in ordered:
        rewards = (m or {}).get("rewards")
        if isinstance(rewards, list) and rewards and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in rewards):
            return [float(x) for x in rewards]
    return []


@dataclass(frozen=True)
class RoundRun:
    round: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    reason: str | None = None


def general_runs(runs: Iterable[RoundRun], rounds: int, *, unfinished_reason: str | None = None) -> list[RunRecord]:
    """One record per round: success when every component succeeded; duration from the first
    start to the last end. Rounds that never ran are reported failed with `unfinished_reason`."""
    by_round: dict[int, list[RoundRun]] = {}
    for run in runs:
        by_round.setdefault(run.round, []).append(run)
    records = []
    for round_ in range(1, rounds + 1):
        items = by_round.get(round_, [])
        starts = [r.started_at for r in items if r.started_at]
        ends = [r.finished_at for r in items if r.finished_at]
        duration = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
        success = bool(items) and all(r.status == "succeeded" for r in items)
        reason = None
        if not success:
            reason = next((r.reason for r in items if r.reason), None) or unfinished_reason or "did not run"
        records.append(RunRecord(run=round_, success=success, duration_s=round(max(0.0, duration), 3),
                                 reason=reason))
    return records
