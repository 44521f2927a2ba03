import math

import pytest

from contracts.events import RunRecord
from services.approval.verdict import Convergence, judge_general, judge_rl

SEED_CURVE = [72.1, 78.5, 82.0, 85.3, 87.9, 89.4, 90.2, 91.0, 91.6, 92.1]


def test_a_rising_curve_that_levels_off_converges_with_the_seed_shape():
    verdict = judge_rl(SEED_CURVE, expected=10)
    assert verdict.passed
    assert verdict.results["convergence"] is True
    assert verdict.results["finalReward"] == 92.1
    assert verdict.results["avgReward"] == round(sum(SEED_CURVE) / 10, 2)
    assert verdict.results["log"].startswith("Episode 1: reward=72.1\nEpisode 2: reward=78.5\n")
    assert verdict.results["rewards"] == SEED_CURVE and "reason" not in verdict.results


def test_a_flat_noisy_reward_converges():
    assert judge_rl([50, 51, 49, 50.5, 49.5, 50, 51, 49, 50, 50.2], expected=10).passed


def test_a_steadily_climbing_reward_is_steady_learning():
    assert judge_rl([10 * i for i in range(1, 11)], expected=10).passed


def test_negative_rewards_are_judged_on_their_own_scale():
    assert judge_rl([-200, -150, -120, -100, -90, -85, -82, -80, -79, -78], expected=10).passed


def test_an_oscillating_reward_does_not_converge():
    verdict = judge_rl([10, 90, 5, 95, 0, 100, 3, 97, 1, 99], expected=10)
    assert not verdict.passed and verdict.results["convergence"] is False
    assert "does not settle" in verdict.reason


def test_a_collapsing_reward_does_not_converge():
    verdict = judge_rl([90, 85, 80, 75, 70, 60, 50, 40, 30, 20], expected=10)
    assert not verdict.passed and "degrading" in verdict.reason


def test_a_late_divergence_does_not_converge():
    assert not judge_rl([50, 52, 54, 55, 56, 56, 57, 57, 10, -100], expected=10).passed


def test_a_non_finite_reward_fails():
    verdict = judge_rl([1.0, 2.0, math.nan, 3.0], expected=4)
    assert not verdict.passed and "finite" in verdict.reason
    assert verdict.results["rewards"][2] is None  # the results stay valid JSON


@pytest.mark.parametrize("rewards, expected", [([1, 2], 2), ([1, 2, 3, 4], 10), ([], 10)])
def test_too_few_episodes_fail(rewards, expected):
    assert not judge_rl(rewards, expected=expected).passed


def test_the_schedulers_failure_fails_the_test():
    verdict = judge_rl(SEED_CURVE, expected=10, failure="pod OOMKilled")
    assert not verdict.passed and verdict.results["reason"] == "pod OOMKilled"


def test_convergence_window_is_a_third_of_the_episodes_but_at_least_three():
    assert [Convergence().window(n) for n in (3, 5, 9, 10, 30)] == [3, 3, 3, 4, 10]


def _runs(*outcomes):
    return [RunRecord(run=i, success=ok, duration_s=d, reason=None if ok else "exit 1")
            for i, (ok, d) in enumerate(outcomes, 1)]


def test_general_passes_at_full_success_in_the_seed_shape():
    verdict = judge_general(_runs((True, 0.32), (True, 0.36), (True, 0.30), (True, 0.38), (True, 0.34)), expected=5)
    assert verdict.passed
    assert verdict.results == {"successRate": "100%", "avgDuration": "0.34s",
                               "log": "Run 1: SUCCESS (0.32s)\nRun 2: SUCCESS (0.36s)\nRun 3: SUCCESS (0.30s)\n"
                                      "Run 4: SUCCESS (0.38s)\nRun 5: SUCCESS (0.34s)"}


def test_general_fails_on_any_failed_run():
    verdict = judge_general(_runs((True, 0.3), (False, 0.1), (True, 0.3), (True, 0.3), (True, 0.3)), expected=5)
    assert not verdict.passed
    assert verdict.results["successRate"] == "80%"
    assert "Run 2: FAILED (0.10s): exit 1" in verdict.results["log"]


def test_general_fails_when_runs_are_missing():
    verdict = judge_general(_runs((True, 0.3)), expected=5)
    assert not verdict.passed and "1 of 5" in verdict.reason
