"""param-optimizer: recommend temperature/pressure setpoints.

1. Search a grid of (temperature, pressure) setpoints, scoring a setpoint controller on each with
   the same random draws (common random numbers), and keep the best.
2. If an upstream policy exists (policy.npz in an input prefix, or the `policy_source` recorded in
   an upstream evaluation.json), roll it out and report its steady operating point beside it.
Writes recommendation.json."""
from __future__ import annotations

from typing import Any

import numpy as np

from components import policy
from components.furnace import Furnace, furnace, rollout, setpoint_policy, summarise, table_policy, upstream_env
from components.runtime import Context, loads, param, progress, run_component

SEARCH_SEED_OFFSET = 2


def _operating_point(summary: dict[str, float], env: Furnace) -> dict[str, float]:
    return {"expected_episode_reward": summary["mean_reward"],
            "steady_efficiency": summary["mean_steady_efficiency"],
            "temp_violation_rate": summary["mean_temp_violation_rate"],
            "pressure_violation_rate": summary["mean_pressure_violation_rate"],
            "steady_temperature": summary["mean_steady_temperature"],
            "steady_pressure": summary["mean_steady_pressure"],
            "temperature_margin": env.max_temp - summary["mean_steady_temperature"],
            "pressure_margin": summary["mean_steady_pressure"] - env.min_pressure}


def search(env: Furnace, temps: np.ndarray, pressures: np.ndarray, episodes: int, steps: int,
           seed: int) -> list[dict[str, Any]]:
    scored = []
    for t_set in temps.tolist():
        for p_set in pressures.tolist():
            runs = rollout(env, setpoint_policy(env, t_set, p_set), episodes, steps, np.random.default_rng(seed))
            scored.append({"temperature_setpoint": t_set, "pressure_setpoint": p_set,
                           **_operating_point(summarise(runs), env)})
    return sorted(scored, key=lambda c: c["expected_episode_reward"], reverse=True)


def run(ctx: Context) -> dict[str, Any]:
    tc = ctx.training
    episodes = param(ctx.params, "search_episodes", 3, minimum=1, maximum=1000, integer=True)
    n_temp = param(ctx.params, "temp_candidates", 13, minimum=2, maximum=200, integer=True)
    n_pres = param(ctx.params, "pressure_candidates", 7, minimum=2, maximum=200, integer=True)
    steps = tc["max_steps_per_episode"]
    upstream_eval = ctx.find_input("evaluation.json")
    evaluation = loads(*upstream_eval) if upstream_eval else {}
    trained = policy.find(ctx, [evaluation["policy_source"]] if evaluation.get("policy_source") else [])
    env = furnace(tc, trained.upstream if trained else upstream_env(ctx))
    seed = env.config.simulation_seed + SEARCH_SEED_OFFSET
    temps = np.linspace(0.7 * env.max_temp, env.max_temp, n_temp)
    pressures = np.linspace(env.min_pressure, env.p_opt + (env.p_opt - env.min_pressure), n_pres)
    progress(f"searching {n_temp}x{n_pres} setpoints, {episodes} episodes of {steps} steps each")
    ranked = search(env, temps, pressures, episodes, steps, seed)
    best = ranked[0]
    progress(f"best setpoint T={best['temperature_setpoint']:.1f} P={best['pressure_setpoint']:.2f}: "
             f"reward {best['expected_episode_reward']:.2f}")
    policy_point = None
    if trained is not None:
        runs = rollout(env, table_policy(env, trained.greedy), episodes, steps, np.random.default_rng(seed))
        policy_point = _operating_point(summarise(runs), env)
        progress(f"policy {trained.uri} settles at T={policy_point['steady_temperature']:.1f} "
                 f"P={policy_point['steady_pressure']:.2f}: reward {policy_point['expected_episode_reward']:.2f}")
    ctx.write_json("recommendation.json", {
        "format": "avatar.recommendation/1", "recommended": best, "policy_operating_point": policy_point,
        "policy_source": trained.uri if trained else None,
        "evaluation_source": upstream_eval[0] if upstream_eval else None,
        "env_config": env.config.to_dict(), "reward_params": env.weights.to_dict(),
        "search": {"candidates": len(ranked), "episodes_per_candidate": episodes,
                   "max_steps_per_episode": steps, "seed": seed, "top": ranked[:5]},
        **ctx.identity()})
    return {"candidates": len(ranked),
            "recommended_temperature": best["temperature_setpoint"],
            "recommended_pressure": best["pressure_setpoint"],
            "expected_episode_reward": best["expected_episode_reward"],
            "policy_source": trained.uri if trained else None,
            "policy_episode_reward": policy_point["expected_episode_reward"] if policy_point else None}


if __name__ == "__main__":
    run_component(run)
