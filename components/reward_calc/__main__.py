"""reward-calc: load the upstream policy.npz, score its greedy policy over `eval_episodes`
episodes with training_config.reward_params, compare it with a random policy, and write
evaluation.json. Without an upstream policy only the random baseline is scored."""
from __future__ import annotations

from typing import Any

import numpy as np

from components import policy
from components.furnace import furnace, random_policy, rollout, summarise, table_policy, upstream_env
from components.runtime import Context, param, progress, run_component

EVAL_SEED_OFFSET = 1  # evaluation episodes use simulation_seed + 1: unseen during training


def run(ctx: Context) -> dict[str, Any]:
    tc = ctx.training
    episodes = param(ctx.params, "eval_episodes", 20, minimum=1, maximum=100_000, integer=True)
    steps = tc["max_steps_per_episode"]
    trained = policy.find(ctx)
    env = furnace(tc, trained.upstream if trained else upstream_env(ctx))
    source = trained.uri if trained else None
    if trained is None:
        progress("no upstream policy.npz: scoring the random baseline only")
    seed = env.config.simulation_seed + EVAL_SEED_OFFSET
    progress(f"evaluating {source or 'random baseline'} over {episodes} episodes of {steps} steps, "
             f"weights {env.weights.to_dict()}")
    baseline = summarise(rollout(env, random_policy(np.random.default_rng([seed, 1]), episodes * steps),
                                 episodes, steps, np.random.default_rng(seed)))
    if trained is not None:
        runs = rollout(env, table_policy(env, trained.greedy), episodes, steps, np.random.default_rng(seed))
        for i, result in enumerate(runs, 1):
            progress(f"Eval episode {i}: reward={result['reward']:.2f}")
        evaluated = summarise(runs)
    else:
        runs, evaluated = [], baseline
    improvement = evaluated["mean_reward"] - baseline["mean_reward"]
    ctx.write_json("evaluation.json", {
        "format": "avatar.evaluation/1", "policy_source": source, "policy_kind": "q-table" if source else "random",
        "episodes": episodes, "max_steps_per_episode": steps, "seed": seed,
        "env_config": env.config.to_dict(), "reward_params": env.weights.to_dict(),
        "policy": evaluated, "random_baseline": baseline, "improvement_over_random": improvement,
        "episode_rewards": [r["reward"] for r in runs], **ctx.identity()})
    progress(f"mean reward {evaluated['mean_reward']:.2f} (random {baseline['mean_reward']:.2f})")
    return {"eval_episodes": episodes, "policy_source": source,
            "mean_reward": evaluated["mean_reward"], "std_reward": evaluated["std_reward"],
            "min_reward": evaluated["min_reward"], "max_reward": evaluated["max_reward"],
            "steady_efficiency": evaluated["mean_steady_efficiency"],
            "temp_violation_rate": evaluated["mean_temp_violation_rate"],
            "pressure_violation_rate": evaluated["mean_pressure_violation_rate"],
            "random_mean_reward": baseline["mean_reward"], "improvement_over_random": improvement}


if __name__ == "__main__":
    run_component(run)
