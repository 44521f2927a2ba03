"""Bad input ends a component with exit code 2 and one clear `error:` line on stderr."""
from __future__ import annotations

import pytest
from component_harness import run


def _assert_rejected(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("package", ["env_simulator", "rl_agent", "reward_calc", "param_optimizer", "data_loader"])
def test_negative_max_temp_is_rejected_by_every_furnace_component(tmp_path, package):
    result = run(package, str(tmp_path), training={"env_config": {"max_temp": -5}})
    _assert_rejected(result, "env_config.max_temp", "-5")
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("env_config, fragment", [
    ({"max_temp": "hot"}, "env_config.max_temp must be a number"),
    ({"min_pressure": -1}, "env_config.min_pressure must be >= 0"),
    ({"simulation_seed": 1.5}, "env_config.simulation_seed must be an integer"),
    ({"max_temp": True}, "env_config.max_temp must be a number"),
])
def test_invalid_env_config_values_are_named(tmp_path, env_config, fragment):
    _assert_rejected(run("rl_agent", str(tmp_path), training={"env_config": env_config}), fragment)


@pytest.mark.parametrize("training, fragment", [
    ({"episodes": 0}, "training_config.episodes must be >= 1"),
    ({"gamma": 1.5}, "training_config.gamma must be <= 1"),
    ({"learning_rate": 0}, "training_config.learning_rate must be > 0"),
    ({"env_config": [1]}, "training_config.env_config must be a JSON object"),
    ({"reward_params": {"safety_weight": "high"}}, "reward_params.safety_weight must be a number"),
])
def test_invalid_training_config_is_rejected(tmp_path, training, fragment):
    _assert_rejected(run("rl_agent", str(tmp_path), training=training), fragment)


def test_malformed_json_env_is_rejected(tmp_path):
    from component_harness import component_env, start

    env = component_env(str(tmp_path))
    env["AVATAR_TRAINING_CONFIG"] = "{not json"
    proc = start("rl_agent", env)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert stderr.startswith("error: AVATAR_TRAINING_CONFIG is not valid JSON")


def test_unknown_env_config_keys_are_accepted(tmp_path):
    result = run("env_simulator", str(tmp_path), training={"env_config": {"max_temp": 850, "colour": "red"}})
    assert result.returncode == 0, result.stderr
    assert "colour" in result.stdout
    assert (tmp_path / "env.json").exists()


def test_s3_output_without_an_endpoint_is_rejected(tmp_path):
    _assert_rejected(run("probe", "s3://bucket/wl/probe/"), "AVATAR_S3_ENDPOINT")


def test_bad_probe_param_is_rejected(tmp_path):
    _assert_rejected(run("probe", str(tmp_path), params={"exit_code": "x"}), "params.exit_code")


def test_env_config_is_validated_even_when_an_upstream_policy_wins(tmp_path):
    agent = run("rl_agent", str(tmp_path / "agent"), training={"episodes": 1, "max_steps_per_episode": 10})
    assert agent.returncode == 0, agent.stderr
    result = run("reward_calc", str(tmp_path / "eval"), inputs=[str(tmp_path / "agent")],
                 training={"env_config": {"max_temp": "x"}})
    _assert_rejected(result, "env_config.max_temp must be a number")


def test_tampered_policy_is_rejected(tmp_path):
    agent = run("rl_agent", str(tmp_path / "agent"), training={"episodes": 1, "max_steps_per_episode": 10})
    assert agent.returncode == 0, agent.stderr
    with open(tmp_path / "agent" / "policy.npz", "ab") as artifact:
        artifact.write(b"x")
    _assert_rejected(run("reward_calc", str(tmp_path / "eval"), inputs=[str(tmp_path / "agent")]), "sha256")
