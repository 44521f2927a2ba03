"""env-simulator: validate env_config, describe the furnace dynamics in env.json, and measure two
reference points (a random policy and a setpoint controller at the optimum) for later stages."""
from __future__ import annotations

from typing import Any

import numpy as np

from components.furnace import ENV_JSON, FORMAT, FurnaceConfig, furnace, random_policy, rollout, \
    setpoint_policy, summarise
from components.runtime import Context, param, progress, run_component


def run(ctx: Context) -> dict[str, Any]:
    tc = ctx.training
    env = furnace(tc)
    config = env.config
    ignored = FurnaceConfig.ignored_keys(tc["env_config"])
    if ignored:
        progress(f"env_config keys not used by the furnace model: {', '.join(ignored)}")
    episodes = param(ctx.params, "baseline_episodes", 5, minimum=1, maximum=1000, integer=True)
    steps = tc["max_steps_per_episode"]
    rng = np.random.default_rng(config.simulation_seed)
    progress(f"furnace: max_temp={config.max_temp} min_pressure={config.min_pressure} "
             f"optimum=({env.t_opt:.1f}, {env.p_opt:.2f}); {episodes} reference episodes of {steps} steps")
    baselines = {
        "random_policy": summarise(rollout(env, random_policy(rng, episodes * steps), episodes, steps, rng)),
        "optimum_setpoint_controller": summarise(
            rollout(env, setpoint_policy(env, env.t_opt, env.p_opt), episodes, steps, rng)),
    }
    for name, summary in baselines.items():
        progress(f"{name}: mean episode reward {summary['mean_reward']:.2f}")
    ctx.write_json(ENV_JSON, {
        "format": FORMAT, "env_config": config.to_dict(), "ignored_keys": ignored,
        "reward_params": env.weights.to_dict(), "dynamics": env.describe(),
        "baselines": baselines, "baseline_episodes": episodes, "max_steps_per_episode": steps,
        **ctx.identity()})
    return {"valid": True, "states": env.n_states, "actions": env.n_actions, "ignored_keys": ignored,
            "random_policy_reward": baselines["random_policy"]["mean_reward"],
            "setpoint_controller_reward": baselines["optimum_setpoint_controller"]["mean_reward"]}


if __name__ == "__main__":
    run_component(run)
