"""rl-agent as a real subprocess: it learns on the default config, reproducibly, and reports per episode."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
from component_harness import REPO, component_env, run, start

EPISODE_LINE = re.compile(r"^Episode (\d+): reward=(-?\d+\.\d{2})$", re.M)
DEFAULT_CONFIG = {
    "episodes": 1000, "learning_rate": 0.001, "batch_size": 64, "gamma": 0.99, "max_steps_per_episode": 500,
    "env_config": {"simulation_seed": 42, "max_temp": 850, "min_pressure": 10},
    "reward_params": {"efficiency_weight": 0.6, "safety_weight": 0.4},
}
# Efficiency <= 1 and no violation is the best a step can do: 0.6 * 500 steps per episode.
BEST_POSSIBLE_EPISODE = 0.6 * 500


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return stdout, stderr


def test_rl_agent_converges_on_the_default_config_and_is_reproducible(tmp_path):
    # two identical runs side by side, plus one with another seed
    other = {**DEFAULT_CONFIG, "env_config": {**DEFAULT_CONFIG["env_config"], "simulation_seed": 7}}
    outs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    procs = [start("rl_agent", component_env(str(out), training=config))
             for out, config in zip(outs, [DEFAULT_CONFIG, DEFAULT_CONFIG, other])]
    stdout_a, _ = _finish(procs[0])
    for proc in procs[1:]:
        _finish(proc)
    metrics = [json.loads((out / "metrics.json").read_text()) for out in outs]

    rewards = metrics[0]["rewards"]
    assert metrics[0]["episodes"] == len(rewards) == 1000
    lines = EPISODE_LINE.findall(stdout_a)
    assert [int(i) for i, _ in lines] == list(range(1, 1001))
    assert [float(r) for _, r in lines] == [round(r, 2) for r in rewards]

    first, last = np.mean(rewards[:100]), np.mean(rewards[-100:])
    # The first tenth explores almost at random (epsilon 1.0 -> 0.8). Learning must close at least
    # half of the best possible episode reward over it and end at >= 80% of that bound.
    assert last >= first + 0.5 * BEST_POSSIBLE_EPISODE, (first, last)
    assert last >= 0.8 * BEST_POSSIBLE_EPISODE, last
    assert metrics[0]["convergence"] is True
    assert metrics[0]["final_reward"] == rewards[-1]
    assert metrics[0]["best_reward"] == max(rewards)
    assert abs(metrics[0]["avg_reward"] - np.mean(rewards)) < 1e-9

    assert metrics[1]["rewards"] == rewards  # same simulation_seed: identical
    assert metrics[2]["rewards"] != rewards  # another seed: another run
    assert metrics[2]["convergence"] is True


def test_rl_agent_short_run_writes_the_policy_artifact(tmp_path):
    result = run("rl_agent", str(tmp_path), training={"episodes": 10, "env_config": {"simulation_seed": 3}})
    assert result.returncode == 0, result.stderr
    assert len(EPISODE_LINE.findall(result.stdout)) == 10
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["episodes"] == 10 and len(metrics["rewards"]) == 10
    assert set(metrics) >= {"final_reward", "avg_reward", "best_reward", "convergence"}
    meta = json.loads((tmp_path / "policy.json").read_text())
    with np.load(tmp_path / "policy.npz") as policy:
        assert policy["q_table"].shape == (192, 5)
    assert meta["env_config"]["simulation_seed"] == 3
    assert meta["training_config"]["episodes"] == 10


def test_training_config_wins_over_params_which_are_only_a_fallback(tmp_path):
    fallback = run("rl_agent", str(tmp_path / "f"), params={"episodes": 4, "lr": 0.002}, training={})
    assert fallback.returncode == 0, fallback.stderr
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["episodes"] == 4
    assert json.loads((tmp_path / "f" / "policy.json").read_text())["training_config"]["learning_rate"] == 0.002

    authoritative = run("rl_agent", str(tmp_path / "t"), params={"episodes": 4, "lr": 0.002},
                        training={"episodes": 3, "learning_rate": 0.001})
    assert authoritative.returncode == 0, authoritative.stderr
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["episodes"] == 3
    assert json.loads((tmp_path / "t" / "policy.json").read_text())["training_config"]["learning_rate"] == 0.001


def test_rl_agent_trains_on_the_upstream_env_json(tmp_path):
    env_out = tmp_path / "env"
    sim = run("env_simulator", str(env_out), training={"env_config": {"max_temp": 400, "simulation_seed": 5}})
    assert sim.returncode == 0, sim.stderr
    agent = run("rl_agent", f"file://{tmp_path / 'agent'}/", inputs=[f"file://{env_out}/"],
                training={"episodes": 2, "env_config": {"max_temp": 999}})
    assert agent.returncode == 0, agent.stderr
    meta = json.loads((tmp_path / "agent" / "policy.json").read_text())
    assert meta["env_config"]["max_temp"] == 400.0
    assert meta["env_source"] == f"file://{env_out}/env.json"


def test_sigterm_stops_a_long_training_promptly(tmp_path):
    proc = start("rl_agent", component_env(str(tmp_path), training={"episodes": 1_000_000}))
    assert proc.stdout.readline()  # started
    proc.terminate()
    _, stderr = proc.communicate(timeout=5)
    assert proc.returncode == 143
    assert stderr.endswith("error: terminated by SIGTERM\n")


def test_components_import_without_side_effects():
    code = "import components.runtime, components.furnace, components.policy, components.rl_agent.qlearning"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=30)
