"""The scheduler's pure rules: DAG readiness, rounds, the env contract, reasons, loop-test results."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from contracts.resources import Resources
from contracts.spec import AppSpec, ImageRef, SpecComponent, SpecTask, WorkflowEdge
from contracts.workload import RequestedResources, WireTrainingConfig, Workload
from services.scheduler import domain, outcomes
from services.scheduler.domain import RunState
from services.scheduler.outcomes import RoundRun

T0 = datetime(2026, 2, 9, 9, 0, tzinfo=timezone.utc)


def comp(component_id: str, **params) -> SpecComponent:
    return SpecComponent(component_id=component_id, name=component_id.lower(),
                         image=ImageRef(registry="registry.avatar.io/x", tag="1"),
                         resources=Resources(gpu_type="A100", gpu_count=1, memory="64GB"), params=params)


def spec(*tasks: SpecTask, env_vars: dict | None = None) -> AppSpec:
    return AppSpec(app_id="APP-1", name="app", version="1.0.0", tasks=list(tasks), env_vars=env_vars or {},
                   created_at=T0)


def task(task_id: str, *components: SpecComponent, edges=()) -> SpecTask:
    return SpecTask(task_id=task_id, name=task_id.lower(), components=list(components),
                    workflow=[WorkflowEdge(**{"from": a, "to": b}) for a, b in edges])


def wl(app: AppSpec, **overrides) -> Workload:
    values = dict(workload_id="WL-1", app_id="APP-1", spec_version="1", requester="kim", submitted_at=T0,
                  resources=RequestedResources(gpu_type="A100", gpu_count=1, memory="64GB", max_runtime="2h"),
                  training_config=WireTrainingConfig(episodes=1000, env_config={"max_temp": 850}), spec=app)
    values.update(overrides)
    return Workload(**values)


def states(app: AppSpec, status: dict[str, str], rounds: int = 1) -> list[RunState]:
    planned = domain.plan_runs(app, job_id="J", workload_id="WL-1", staging_bucket="b", rounds=rounds)
    return [RunState(p.run_id, p.round, p.task_id, p.component_id, status.get(f"{p.round}:{p.component_id}", "pending"))
            for p in planned]


def ids(run_ids: list[str]) -> list[str]:
    return [r.rsplit("/", 1)[1] for r in run_ids]


def test_components_without_edges_and_independent_tasks_are_ready_at_once():
    app = spec(task("T1", comp("A"), comp("B"), edges=[("A", "B")]), task("T2", comp("C"), comp("D")))
    assert ids(domain.ready_runs(app, states(app, {}))) == ["A", "C", "D"]


def test_a_component_is_ready_only_when_every_predecessor_succeeded():
    app = spec(task("T1", comp("A"), comp("B"), comp("C"), edges=[("A", "C"), ("B", "C")]))
    assert ids(domain.ready_runs(app, states(app, {"1:A": "succeeded", "1:B": "running"}))) == []
    assert ids(domain.ready_runs(app, states(app, {"1:A": "succeeded", "1:B": "succeeded"}))) == ["C"]
    assert ids(domain.ready_runs(app, states(app, {"1:A": "succeeded", "1:B": "failed"}))) == []


def test_rounds_of_a_general_loop_test_run_one_after_another():
    app = spec(task("T1", comp("A")))
    runs = states(app, {}, rounds=3)
    assert [r.split("/")[1] for r in domain.ready_runs(app, runs)] == ["1"]
    runs = states(app, {"1:A": "failed"}, rounds=3)
    assert [r.split("/")[1] for r in domain.ready_runs(app, runs)] == ["2"]
    assert domain.all_done(states(app, {"1:A": "failed", "2:A": "succeeded", "3:A": "skipped"}, rounds=3))


def test_output_prefixes_and_log_keys_keep_workloads_tasks_and_loop_tests_apart():
    assert domain.output_prefix("stg", "WL-1", "T1", "C1") == "s3://stg/WL-1/T1/C1/"
    assert (domain.output_prefix("stg", "WL-1", "T1", "C1", test_run_id="TR-1", round_=2)
            == "s3://stg/WL-1/looptest/TR-1/run-2/T1/C1/")
    assert domain.log_key("WL-1", "T1", "C1") == "logs/WL-1/T1/C1.log"
    assert domain.log_key("WL-1", "T1", "C1", test_run_id="TR-1", round_=1) == "logs/WL-1/looptest/TR-1/run-1/T1/C1.log"


def test_component_env_follows_the_contract_and_app_env_vars_cannot_override_it():
    app = spec(task("T1", comp("A", lr=0.01)), env_vars={"NCCL_DEBUG": "INFO", "AVATAR_OUTPUT_PREFIX": "s3://evil/",
                                                        "CUDA_VISIBLE_DEVICES": "all"})
    workload = wl(app)
    env = domain.component_env(workload=workload, task_id="T1", component=app.tasks[0].components[0],
                               output_prefix="s3://stg/WL-1/T1/A/", input_prefixes=["s3://stg/WL-1/T1/Z/"],
                               training=domain.training_config(workload, episodes=10),
                               s3_endpoint="http://s3:9000", s3_credentials=("ak", "sk"))
    assert env["NCCL_DEBUG"] == "INFO" and "CUDA_VISIBLE_DEVICES" not in env
    assert env["AVATAR_OUTPUT_PREFIX"] == "s3://stg/WL-1/T1/A/"
    assert (env["AVATAR_WORKLOAD_ID"], env["AVATAR_COMPONENT_ID"], env["AVATAR_COMPONENT_NAME"], env["AVATAR_TASK_ID"]) == (
        "WL-1", "A", "a", "T1")
    assert json.loads(env["AVATAR_PARAMS"]) == {"lr": 0.01}
    training = json.loads(env["AVATAR_TRAINING_CONFIG"])
    assert training["episodes"] == 10 and training["learning_rate"] == 0.001 and training["env_config"] == {"max_temp": 850}
    assert json.loads(env["AVATAR_INPUT_PREFIXES"]) == ["s3://stg/WL-1/T1/Z/"]
    assert (env["AVATAR_S3_ENDPOINT"], env["AVATAR_S3_ACCESS_KEY"], env["AVATAR_S3_SECRET_KEY"]) == (
        "http://s3:9000", "ak", "sk")
    pod_env = domain.component_env(workload=workload, task_id="T1", component=app.tasks[0].components[0],
                                   output_prefix="p", input_prefixes=[], training={}, s3_endpoint="e",
                                   s3_credentials=None)
    assert "AVATAR_S3_ACCESS_KEY" not in pod_env  # the pod reads them from a Secret


def test_cpu_comes_from_the_request_or_the_default():
    app = spec(task("T1", comp("A")))
    assert domain.component_cpu(wl(app), 1.0) == 1.0
    with_cpu = wl(app, resources=RequestedResources(gpu_type="A100", gpu_count=1, memory="64GB", cpu=4))
    assert domain.component_cpu(with_cpu, 1.0) == 4.0
    demand = domain.demand_for(app.tasks[0].components[0], cpu=4)
    assert (demand.gpu_type, demand.gpu_count, demand.memory_bytes, demand.cpu_millis) == ("A100", 1, 64 * 10**9, 4000)


def test_failure_reasons_name_the_component_the_exit_code_and_the_last_line():
    assert domain.component_failure_reason("rl-agent", "CL-2", 2, "error: env_config.max_temp must be > 0\n") == (
        "component rl-agent (CL-2) exited with exit code 2: error: env_config.max_temp must be > 0")
    assert domain.component_failure_reason("x", "C", None, None, "lost: pod p no longer exists") == (
        "component x (C) ended without an exit code (lost: pod p no longer exists)")
    assert domain.timeout_reason(2) == "timeout: exceeded max_runtime 2s"
    assert domain.timeout_reason(7200) == "timeout: exceeded max_runtime 2h"
    assert domain.job_runtime_limit(wl(spec(task("T1", comp("A")))), 3) == 3 * 7200


def test_loop_tests_rank_ahead_of_any_real_submission():
    assert domain.looptest_rank(T0.timestamp()) < 0 < datetime(1970, 1, 2, tzinfo=timezone.utc).timestamp()
    assert domain.looptest_rank(T0.timestamp()) < domain.looptest_rank(T0.timestamp() + 1)


def test_rl_rewards_come_from_the_trainer_first():
    metrics = [("other", {"rewards": [1, 2]}), ("trainer", {"rewards": [3.5, 4]}), ("evaluator", {})]
    assert outcomes.rl_rewards(metrics) == [3.5, 4.0]
    assert outcomes.rl_rewards([("other", {"rewards": [1, 2]})]) == [1.0, 2.0]
    assert outcomes.rl_rewards([("trainer", {"rewards": ["x"]}), ("other", None)]) == []


def test_general_runs_record_success_duration_and_the_reason_per_round():
    runs = [RoundRun(1, "succeeded", T0, T0 + timedelta(seconds=1)),
            RoundRun(1, "succeeded", T0 + timedelta(seconds=1), T0 + timedelta(seconds=2.5)),
            RoundRun(2, "failed", T0, T0 + timedelta(seconds=0.5), "component x (C) exited with exit code 3"),
            RoundRun(2, "skipped", None, T0, "an earlier component failed")]
    records = outcomes.general_runs(runs, 3, unfinished_reason="timeout: exceeded max_runtime 2s")
    assert [(r.run, r.success, r.duration_s, r.reason) for r in records] == [
        (1, True, 2.5, None), (2, False, 0.5, "component x (C) exited with exit code 3"),
        (3, False, 0.0, "timeout: exceeded max_runtime 2s")]
