"""The shared component runtime, in process: locations, training config, validation, convergence."""
from __future__ import annotations

import pytest

from components.rl_agent.qlearning import convergence, epsilon, step_size
from components.runtime import InputError, Location, number, split_uri, training_config


def test_locations_parse_s3_file_urls_and_plain_paths(tmp_path):
    assert Location.parse("s3://staging/wl/comp") == Location("s3", "staging", "wl/comp/")
    assert str(Location.parse("s3://staging/wl/comp/")) == "s3://staging/wl/comp/"
    assert Location.parse("s3://staging") == Location("s3", "staging", "")
    assert Location.parse(f"file://{tmp_path}/") == Location("file", str(tmp_path))
    assert Location.parse(str(tmp_path)) == Location("file", str(tmp_path))
    assert split_uri("s3://b/p/q/policy.npz") == (Location("s3", "b", "p/q/"), "policy.npz")
    with pytest.raises(InputError, match="only s3://"):
        Location.parse("http://x/y")


def test_training_config_defaults_fallbacks_and_precedence():
    assert training_config({}, {}) == {"episodes": 1000, "learning_rate": 0.001, "batch_size": 64, "gamma": 0.99,
                                       "max_steps_per_episode": 500, "env_config": {}, "reward_params": {}}
    assert training_config({}, {"lr": 0.01, "episodes": 5})["learning_rate"] == 0.01
    merged = training_config({"episodes": 7, "learning_rate": 0.002}, {"lr": 0.01, "episodes": 5})
    assert (merged["episodes"], merged["learning_rate"]) == (7, 0.002)
    assert training_config({"episodes": 10.0}, {})["episodes"] == 10


def test_numbers_are_checked_with_the_key_in_the_message():
    assert number("env_config", "max_temp", 850) == 850.0
    with pytest.raises(InputError, match=r"env_config.max_temp must be > 0, got -1"):
        number("env_config", "max_temp", -1, above=0)
    with pytest.raises(InputError, match="must be finite"):
        number("x", "y", float("nan"))
    with pytest.raises(InputError, match="must be a number"):
        number("x", "y", "850")


def test_convergence_needs_improvement_and_a_stable_last_tenth():
    rising = [float(i) for i in range(1, 101)]  # last tenth: 91..100, cv ~ 0.03
    assert convergence(rising)["converged"] is True
    assert convergence(rising[::-1])["converged"] is False
    noisy = [0.0] * 90 + [1.0, 100.0] * 5
    assert convergence(noisy)["converged"] is False  # improves, but cv ~ 0.98
    assert convergence([1.0, 2.0])["window"] == 1


def test_learning_rate_and_exploration_schedules():
    assert step_size(0.001) == pytest.approx(0.1)
    assert step_size(1.0) == 0.5
    assert epsilon(0, 1000) == 1.0 and epsilon(999, 1000) == 0.02
    assert epsilon(0, 10) == 1.0 and epsilon(9, 10) == 0.02
