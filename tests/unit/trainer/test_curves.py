from datetime import datetime, timezone

from services.trainer.curves import MAX_POINTS, reward_curve, thin
from services.trainer.domain import TimelineEntry

T0 = datetime(2026, 2, 9, 9, 0, tzinfo=timezone.utc)


def completed(*artifacts) -> TimelineEntry:
    return TimelineEntry(type="workload.completed", producer="scheduler", occurred_at=T0,
                         details={"artifacts": list(artifacts)})


def test_the_curve_is_the_first_component_with_a_numeric_reward_list():
    entries = [TimelineEntry(type="training.requested", producer="trainer", occurred_at=T0),
               completed({"name": "env-simulator", "metrics": {"states": 192}},
                         {"name": "rl-agent", "metrics": {"rewards": [1, 2.5, 3], "final_reward": 3}},
                         {"name": "reward-calc", "metrics": {"rewards": [9.0]}})]
    assert reward_curve(entries) == {"component": "rl-agent", "episodes": [1, 2, 3], "rewards": [1.0, 2.5, 3.0],
                                     "total": 3}


def test_no_curve_without_a_completion_or_a_reward_list():
    assert reward_curve([]) is None
    assert reward_curve([completed({"name": "data-loader", "metrics": {"rows": 10}})]) is None
    assert reward_curve([completed({"name": "x", "metrics": {"rewards": ["a", 1]}})]) is None
    assert reward_curve([completed({"name": "x", "metrics": {"rewards": [True, False]}})]) is None


def test_a_long_run_is_thinned_to_a_bounded_curve_that_keeps_the_last_episode():
    episodes, rewards = thin([float(i) for i in range(10_007)])
    assert len(episodes) <= MAX_POINTS and episodes[0] == 1 and episodes[-1] == 10_007 and rewards[-1] == 10_006.0
    assert episodes == sorted(set(episodes))
    assert thin([1.0, 2.0]) == ([1, 2], [1.0, 2.0])
