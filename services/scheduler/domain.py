"""The scheduler's rules, free of I/O: jobs and their runs, DAG readiness, the component env
contract, failure reasons, and the `Job` aggregate (a job's lifecycle and the events it implies).

A *job* is one schedulable unit: a workload run (job id = workload id) or a loop test of a
workload. A job has one *run* per spec component (a general loop test: one per component and
round; its rounds run one after another). Tasks are independent; inside a Task a component
is ready when every `workflow` predecessor has succeeded. Loop-test results and terminal events
are built in outcomes.py (re-exported here).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from contracts.events import LoopTestRequested, WorkloadCancelled, WorkloadFailed, WorkloadQueued, WorkloadStarted
from contracts.resources import parse_duration
from contracts.spec import AppSpec, SecretRef, SpecComponent, SpecTask
from contracts.workload import Workload
from services.kit.unit_of_work import Aggregate
from services.scheduler.core.demand import ComponentDemand
from services.scheduler.outcomes import allocations, looptest_completed, terminal_event
from services.scheduler.records import JobRecord, RunRecord

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
    def of(cls, run: RunRecord) -> "RunState":
        return cls(run.run_id, run.round, run.task_id, run.component_id, run.status)


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


def component_secrets(workload: Workload) -> dict[str, SecretRef]:
    """The secret env vars a component gets, as references its runner resolves when it starts it; like
    plain ones, they never override what the platform sets."""
    return {name: ref for name, ref in workload.spec.secret_env_vars.items()
            if not name.startswith(RESERVED_ENV_PREFIXES) and name not in RESERVED_ENV}


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


# ---------------------------------------------------------------- the job aggregate

EMPTY_SPEC = "the App spec has no components to run"


class TransitionRefused(Exception):
    """A change the job's current status does not allow (the SQL guard would refuse it too)."""


@dataclass(eq=False)
class Job(Aggregate):
    """A workload's (or a loop test's) lifecycle: waiting -> running -> stopping -> completed | failed |
    cancelled, or running -> completed at once when every run is done (nothing to compensate).

    Each transition checks what the status allows and records the event it implies; the repository
    persists it with guarded SQL (the guard, not this check, is what keeps two writers apart), and
    drops the recorded events when the guard refused."""

    state: JobRecord  # the row as last read or written
    planned: list[PlannedRun] = field(default_factory=list)  # the runs a new job is added with

    @property
    def correlation_id(self) -> str:
        return self.state.workload_id

    @property
    def job_id(self) -> str:
        return self.state.job_id

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def kind(self) -> str:
        return self.state.kind

    @property
    def may_run(self) -> bool:
        """Its runs may still be claimed and started."""
        return self.state.status in ("waiting", "running")

    def refresh(self, record: JobRecord) -> None:
        """The row as the guarded write left it (timestamps are the database's)."""
        self.state = record

    # ------------------------------------------------------------ accepting work

    @classmethod
    def accept_workload(cls, workload: Workload, *, staging_bucket: str, trace_headers: dict[str, Any]) -> "Job":
        """An approved workload waits in the queue, or fails at once when its spec has nothing to run."""
        job_id = workload_job_id(workload.workload_id)
        empty = not workload.spec.components()
        job = cls(JobRecord(
            job_id=job_id, kind="workload", workload_id=workload.workload_id, workload=workload.to_wire(),
            priority=workload.priority, queue_rank=workload.submitted_at.timestamp(), requester=workload.requester,
            name=workload.name or workload.spec.name, status="failed" if empty else "waiting",
            submitted_at=workload.submitted_at, max_runtime_s=max_runtime_seconds(workload),
            trace_headers=trace_headers,
            **(dict(outcome="failed", failure_stage="queue", failure_reason=EMPTY_SPEC) if empty else {})))
        if empty:
            job.record("workload.failed", WorkloadFailed(workload_id=workload.workload_id, stage="queue",
                                                         reason=EMPTY_SPEC))
        else:
            job.planned = plan_runs(workload.spec, job_id=job_id, workload_id=workload.workload_id,
                                    staging_bucket=staging_bucket)
            job.record("workload.queued", WorkloadQueued(workload_id=workload.workload_id, priority=workload.priority))
        return job

    @classmethod
    def accept_looptest(cls, request: LoopTestRequested, requested_at: datetime, *, staging_bucket: str,
                        trace_headers: dict[str, Any]) -> "Job":
        """A loop test goes ahead of all other work; one of a spec with nothing to run fails at once."""
        workload = request.workload
        job_id = looptest_job_id(request.workload_id, request.test_run_id)
        rounds = request.episodes if request.mode == "general" else 1
        empty = not workload.spec.components()
        job = cls(JobRecord(
            job_id=job_id, kind="looptest", workload_id=request.workload_id, workload=workload.to_wire(),
            priority="high", queue_rank=looptest_rank(requested_at.timestamp()), requester=request.requested_by,
            name=workload.name or workload.spec.name, status="failed" if empty else "waiting",
            submitted_at=requested_at, max_runtime_s=job_runtime_limit(workload, rounds), trace_headers=trace_headers,
            test_run_id=request.test_run_id, mode=request.mode, rounds=rounds,
            episodes=request.episodes if request.mode == "rl" else None,
            **(dict(outcome="failed", failure_stage="loop_test", failure_reason=EMPTY_SPEC) if empty else {})))
        if empty:
            job.record("looptest.completed", looptest_completed(job.state, [], {}))
        else:
            job.planned = plan_runs(workload.spec, job_id=job_id, workload_id=request.workload_id,
                                    staging_bucket=staging_bucket, rounds=rounds, test_run_id=request.test_run_id)
            job.record("workload.queued", WorkloadQueued(workload_id=request.workload_id, priority="high",
                                                         loop_test=True))
        return job

    @classmethod
    def cancelled_before_approval(cls, workload_id: str, by: str, now: datetime) -> "Job":
        """A cancel for a workload not approved yet is kept (a tombstone without a workload), so the
        approval that follows ends cancelled instead of running."""
        return cls(JobRecord(job_id=workload_job_id(workload_id), kind="workload", workload_id=workload_id,
                             workload=None, status="cancelled", queue_rank=0, submitted_at=now, max_runtime_s=1,
                             trace_headers={}, cancelled_by=by))

    @property
    def is_tombstone(self) -> bool:
        return self.state.workload is None and self.state.status == "cancelled"

    def approve_after_cancel(self, workload: Workload) -> None:
        """The approval a cancel overtook: the workload is recorded and ends here, cancelled, once."""
        if not self.is_tombstone:
            raise TransitionRefused(f"job {self.job_id} is {self.status}, not a cancellation waiting for its approval")
        self.state = replace(self.state, workload=workload.to_wire(), priority=workload.priority,
                              requester=workload.requester, name=workload.name or workload.spec.name,
                              submitted_at=workload.submitted_at, max_runtime_s=max_runtime_seconds(workload))
        self.record("workload.cancelled", WorkloadCancelled(
            workload_id=workload.workload_id, cancelled_by=self.state.cancelled_by or "unknown", was_running=False))

    # ------------------------------------------------------------ running

    def start(self, runs: Sequence[RunRecord], deadline: datetime) -> None:
        """waiting -> running on its first component start; a workload announces where it runs."""
        if self.status != "waiting":
            raise TransitionRefused(f"job {self.job_id} is {self.status}; only a waiting job starts")
        self.state = replace(self.state, status="running", deadline=deadline)
        if self.kind == "workload":
            self.record("workload.started", WorkloadStarted(workload_id=self.state.workload_id,
                                                            allocations=allocations(runs)))

    def end_run(self, run: RunRecord, status: str, *, reason: str | None, exit_code: int | None = None,
                last_line: str | None = None, log_url: str | None = None,
                metrics: dict[str, Any] | None = None) -> RunRecord:
        """A live run of this job ends (once: the guarded write keeps a second report from changing it)."""
        if run.job_id != self.job_id:
            raise TransitionRefused(f"run {run.run_id} is not a run of job {self.job_id}")
        if status not in RUN_DONE:
            raise TransitionRefused(f"{status} is not how a run ends")
        return replace(run, status=status, exit_code=exit_code, last_line=last_line, reason=reason,
                       log_url=log_url, metrics=metrics)

    # ------------------------------------------------------------ ending

    def begin_stopping(self, outcome: str, *, stage: str | None = None, reason: str | None = None,
                       component_id: str | None = None, cancelled_by: str | None = None) -> None:
        """Record the outcome before compensating (a crash mid-way still finishes it); the terminal
        event comes with `finish`, once the live runs are stopped and the allocations released."""
        if not self.may_run:
            raise TransitionRefused(f"job {self.job_id} is {self.status}; it is already ending")
        if outcome not in JOB_TERMINAL:
            raise TransitionRefused(f"{outcome} is not an outcome")
        self.state = replace(self.state, status="stopping", outcome=outcome, failure_stage=stage,
                              failure_reason=reason, failure_component=component_id, cancelled_by=cancelled_by,
                              was_running=self.status == "running")

    def cancel_waiting(self, by: str) -> None:
        """A waiting workload has nothing live: it is cancelled at once."""
        if self.status != "waiting":
            raise TransitionRefused(f"job {self.job_id} is {self.status}; only waiting work is cancelled at once")
        self.state = replace(self.state, status="cancelled", outcome="cancelled", cancelled_by=by,
                              failure_stage="cancel", was_running=False)
        self.record("workload.cancelled", WorkloadCancelled(workload_id=self.state.workload_id, cancelled_by=by,
                                                            was_running=False))

    def finish(self, runs: Sequence[RunRecord], component_types: Mapping[str, str]) -> None:
        """stopping -> the outcome recorded when it began stopping, with its terminal event."""
        if self.status != "stopping":
            raise TransitionRefused(f"job {self.job_id} is {self.status}; only a stopping job finishes")
        self.state = replace(self.state, status=self.state.outcome or "failed")
        self.record(*terminal_event(self.state, runs, component_types))

    def complete(self, runs: Sequence[RunRecord], component_types: Mapping[str, str]) -> None:
        """running -> completed when every run is done: nothing is live, so nothing to compensate."""
        if self.status != "running":
            raise TransitionRefused(f"job {self.job_id} is {self.status}; only a running job completes")
        if not all_done(RunState.of(r) for r in runs):
            raise TransitionRefused(f"job {self.job_id} still has runs to do")
        self.state = replace(self.state, status="completed", outcome="completed", failure_stage=None,
                              failure_reason=None, failure_component=None, cancelled_by=None, was_running=True)
        self.record(*terminal_event(self.state, runs, component_types))
