"""TR-08: a training's reward per episode, as the compare view overlays it (pure, no I/O).

The run's components write their metrics.json; the one holding a numeric `rewards` list (the RL
trainer's, components/rl_agent) is the training's curve. `final_metrics` keeps only the scalars, so
the curve is read here from the same `workload.completed` entry, thinned to a bounded size.
"""
from __future__ import annotations

from typing import Any, Iterable

from services.trainer.domain import TimelineEntry

MAX_POINTS = 500  # enough for a chart; a 10⁶-episode run must not make a 10⁶-point answer


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    return [float(v) for v in value]


def thin(rewards: list[float], limit: int = MAX_POINTS) -> tuple[list[int], list[float]]:
    """(1-based episode numbers, rewards) with at most `limit` points, evenly strided, the last one kept."""
    if len(rewards) <= limit:
        return list(range(1, len(rewards) + 1)), rewards
    stride = -(-len(rewards) // limit)  # ceiling: never more than `limit` points
    picked = list(range(0, len(rewards), stride))
    if picked[-1] != len(rewards) - 1:
        picked[-1] = len(rewards) - 1
    return [i + 1 for i in picked], [rewards[i] for i in picked]


def reward_curve(entries: Iterable[TimelineEntry]) -> dict[str, Any] | None:
    """{component, episodes, rewards, total} of the latest completion's first component with a reward list;
    None when the run has none (a general workload, or one still running)."""
    completed = [entry for entry in entries if entry.type == "workload.completed"]
    if not completed:
        return None
    for artifact in completed[-1].details.get("artifacts", []):
        rewards = _numbers((artifact.get("metrics") or {}).get("rewards"))
        if rewards is not None:
            episodes, points = thin(rewards)
            return {"component": artifact.get("name") or artifact.get("component_id"), "episodes": episodes,
                    "rewards": points, "total": len(rewards)}
    return None
