"""The example App's chain against a real S3 API: env-simulator -> rl-agent -> reward-calc -> param-optimizer,
each reading its upstream prefix and writing under its own."""
from __future__ import annotations

import numpy as np
from component_harness import run

TRAINING = {"episodes": 60, "max_steps_per_episode": 200,
            "env_config": {"simulation_seed": 42, "max_temp": 850, "min_pressure": 10},
            "reward_params": {"efficiency_weight": 0.6, "safety_weight": 0.4}}
CHAIN = [("env_simulator", "CL-REF-001", "env.json"), ("rl_agent", "CL-REF-002", "policy.npz"),
         ("reward_calc", "CL-REF-003", "evaluation.json"), ("param_optimizer", "CL-REF-004", "recommendation.json")]


def test_example_chain_runs_against_s3(s3):
    bucket = s3.new_bucket()
    upstream: list[str] = []
    for package, component_id, artifact in CHAIN:
        prefix = f"WL-1/TASK-001/{component_id}/"
        result = run(package, f"s3://{bucket}/{prefix}", inputs=upstream, training=TRAINING, s3=s3)
        assert result.returncode == 0, (package, result.stderr)
        keys = s3.keys(bucket, prefix)
        assert {prefix + "metrics.json", prefix + artifact} <= keys, keys
        upstream = [f"s3://{bucket}/{prefix}"]

    policy_meta = s3.get_json(bucket, "WL-1/TASK-001/CL-REF-002/policy.json")
    assert policy_meta["env_source"] == f"s3://{bucket}/WL-1/TASK-001/CL-REF-001/env.json"
    assert s3.keys(bucket, "WL-1/TASK-001/CL-REF-002/") == {
        f"WL-1/TASK-001/CL-REF-002/{name}" for name in ("policy.npz", "policy.json", "metrics.json")}

    evaluation = s3.get_json(bucket, "WL-1/TASK-001/CL-REF-003/evaluation.json")
    assert evaluation["policy_source"] == f"s3://{bucket}/WL-1/TASK-001/CL-REF-002/policy.npz"
    assert evaluation["improvement_over_random"] > 0

    recommendation = s3.get_json(bucket, "WL-1/TASK-001/CL-REF-004/recommendation.json")
    # param-optimizer only sees reward-calc's prefix: it follows evaluation.json to the policy
    assert recommendation["policy_source"] == evaluation["policy_source"]
    assert recommendation["policy_operating_point"] is not None
    best = recommendation["recommended"]
    assert 10 <= best["pressure_setpoint"] and best["temperature_setpoint"] <= 850
    assert best["expected_episode_reward"] >= recommendation["search"]["top"][-1]["expected_episode_reward"]
    metrics = s3.get_json(bucket, "WL-1/TASK-001/CL-REF-004/metrics.json")
    assert metrics["recommended_temperature"] == best["temperature_setpoint"]


def test_components_without_upstream_fall_back_to_env_config(s3):
    bucket = s3.new_bucket()
    for package in ("reward_calc", "param_optimizer", "data_loader"):
        prefix = f"WL-2/{package}/"
        result = run(package, f"s3://{bucket}/{prefix}", training=TRAINING, s3=s3,
                     params={"rows": 500} if package == "data_loader" else {})
        assert result.returncode == 0, (package, result.stderr)
        metrics = s3.get_json(bucket, prefix + "metrics.json")
        assert metrics.get("policy_source") is None
    loader = s3.get_json(bucket, "WL-2/data_loader/metrics.json")
    assert (loader["rows"], loader["train_rows"], loader["val_rows"]) == (500, 400, 100)


def test_data_loader_is_deterministic_and_reads_upstream_env(tmp_path):
    sim = run("env_simulator", str(tmp_path / "env"), training={"env_config": {"max_temp": 300}})
    assert sim.returncode == 0, sim.stderr
    outputs = []
    for name in ("a", "b"):
        result = run("data_loader", str(tmp_path / name), inputs=[str(tmp_path / "env")], params={"rows": 300})
        assert result.returncode == 0, result.stderr
        with np.load(tmp_path / name / "dataset.npz") as data:
            outputs.append((data["train"].copy(), data["val"].copy(), list(data["columns"])))
    assert np.array_equal(outputs[0][0], outputs[1][0]) and np.array_equal(outputs[0][1], outputs[1][1])
    train, val, columns = outputs[0]
    assert train.shape == (240, 8) and val.shape == (60, 8) and columns[0] == "temperature"
    assert train[:, columns.index("temperature")].max() <= 1.15 * 300  # the upstream furnace, not the default 850


def test_missing_bucket_is_a_storage_failure(s3):
    result = run("probe", "s3://no-such-bucket-avatar/x/", s3=s3)
    assert result.returncode == 1
    assert result.stderr.startswith("error: storage: cannot write s3://no-such-bucket-avatar/x/output.bin")
