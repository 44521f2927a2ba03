"""The minimum run test's verdict (pure): RL convergence and general success, in docs/spec.md §5.2's shape.

RL convergence criterion (AP-03). With n episode rewards and a window w = max(3, ceil(n / 3)):
  - at least 3 episodes were run, as many as requested, and every reward is a finite number;
  - scale = max(|mean of the last w rewards|, max reward - min reward), so the tolerances below
    follow the size of the rewards whatever their unit or sign;
  - not degrading: mean(last w) >= mean(first w) - 5% of scale (the moving average has not fallen);
  - steady: around its own straight-line trend, the last w rewards deviate by at most 10% of scale
    (root mean square of the residuals). A curve still climbing steadily is steady; one that
    oscillates or collapses at the end is not.
Converged iff both hold. A general workload passes iff every requested run reported success.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Sequence

from contracts.events import LoopTestCompleted, RunRecord


@dataclass(frozen=True)
class Verdict:
    passed: bool
    results: dict[str, Any]
    reason: str | None = None


@dataclass(frozen=True)
class Convergence:
    stability: float = 0.10
    degradation: float = 0.05
    min_episodes: int = 3

    def window(self, n: int) -> int:
        return min(n, max(3, math.ceil(n / 3)))

    def judge(self, rewards: Sequence[float]) -> str | None:
        """None when the rewards converge, else why they do not."""
        if len(rewards) < self.min_episodes:
            return f"{len(rewards)} episode(s) are too few to judge convergence (at least {self.min_episodes})"
        if not all(math.isfinite(r) for r in rewards):
            return "a reward is not a finite number (NaN or infinity): training diverged"
        w = self.window(len(rewards))
        head, tail = rewards[:w], rewards[-w:]
        scale = max(abs(fmean(tail)), max(rewards) - min(rewards), 1e-9)
        if fmean(tail) < fmean(head) - self.degradation * scale:
            return (f"reward is degrading: the last {w} episodes average {_num(fmean(tail))}, "
                    f"the first {w} averaged {_num(fmean(head))}")
        wobble = _residual_rms(tail)
        if wobble > self.stability * scale:
            return (f"reward does not settle: the last {w} episodes deviate {_num(wobble)} from their trend "
                    f"(allowed {_num(self.stability * scale)})")
        return None


def _residual_rms(values: Sequence[float]) -> float:
    """Root mean square distance of the values from their least-squares straight line."""
    n = len(values)
    xs = range(n)
    x_mean, y_mean = (n - 1) / 2, fmean(values)
    spread = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, values)) / spread if spread else 0.0
    return math.sqrt(sum((y - (y_mean + slope * (x - x_mean))) ** 2 for x, y in zip(xs, values)) / n)


def _num(value: float) -> str:
    """72.10 -> '72.1', 91 -> '91.0', 85.333 -> '85.33': docs/spec.md §5.2's way of writing rewards."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text


def _percent(value: float) -> str:
    """100 -> '100%', 80 -> '80%', 66.666 -> '66.7%' (docs/spec.md §5.2's "successRate": "100%")."""
    return f"{value:.1f}".removesuffix(".0") + "%"


def _round(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def judge_rl(rewards: Sequence[float], expected: int, failure: str | None = None,
             criterion: Convergence = Convergence()) -> Verdict:
    rewards = [float(r) for r in rewards]
    reason = failure
    if reason is None and len(rewards) < expected:
        reason = f"only {len(rewards)} of {expected} episodes reported a reward"
    if reason is None:
        reason = criterion.judge(rewards)
    finite = [r for r in rewards if math.isfinite(r)]
    results: dict[str, Any] = {
        "convergence": reason is None,
        "avgReward": _round(fmean(finite)) if finite else None,
        "finalReward": _round(rewards[-1]) if rewards else None,
        "log": "\n".join(f"Episode {i}: reward={_num(r)}" for i, r in enumerate(rewards, 1)),
        "rewards": [r if math.isfinite(r) else None for r in rewards],  # AP-04: the reward curve to draw
    }
    if reason:
        results["reason"] = reason
    return Verdict(reason is None, results, reason)


def judge_general(runs: Sequence[RunRecord], expected: int, failure: str | None = None) -> Verdict:
    succeeded = sum(1 for run in runs if run.success)
    reason = failure
    if reason is None and len(runs) < expected:
        reason = f"only {len(runs)} of {expected} runs reported"
    if reason is None and succeeded < len(runs):
        reason = f"{len(runs) - succeeded} of {len(runs)} runs failed"
    lines = []
    for run in runs:
        line = f"Run {run.run}: {'SUCCESS' if run.success else 'FAILED'} ({run.duration_s:.2f}s)"
        lines.append(line + (f": {run.reason}" if run.reason and not run.success else ""))
    results: dict[str, Any] = {
        "successRate": _percent(100 * succeeded / len(runs)) if runs else "0%",
        "avgDuration": f"{fmean(run.duration_s for run in runs):.2f}s" if runs else None,
        "log": "\n".join(lines),
    }
    if reason:
        results["reason"] = reason
    return Verdict(reason is None, results, reason)


def judge(completed: LoopTestCompleted, expected: int) -> Verdict:
    if completed.mode == "rl":
        return judge_rl(completed.rewards, expected, completed.failure)
    return judge_general(completed.runs, expected, completed.failure)


def timed_out(mode: str, after_seconds: int) -> Verdict:
    reason = f"no result from the scheduler within {after_seconds}s"
    if mode == "rl":
        return judge_rl([], 0, reason)
    return judge_general([], 0, reason)

