"""rl-agent: Q-learning on the furnace from the upstream env.json (or env_config).

Writes policy.npz + policy.json and metrics.json; prints `Episode i: reward=x.xx` per episode."""
from __future__ import annotations

import time
from typing import Any

from components import policy
from components.furnace import furnace, upstream_env
from components.rl_agent import qlearning
from components.runtime import Context, progress, run_component


def run(ctx: Context) -> dict[str, Any]:
    tc = ctx.training
    upstream = upstream_env(ctx)
    env = furnace(tc, upstream)
    seed = env.config.simulation_seed
    alpha = qlearning.step_size(tc["learning_rate"])
    progress(f"environment from {upstream[0] if upstream else 'training_config.env_config'}: "
             f"{env.n_states} states x {env.n_actions} actions, seed {seed}")
    progress(f"q-learning: episodes={tc['episodes']} alpha={alpha} (learning_rate={tc['learning_rate']}) "
             f"gamma={tc['gamma']} batch_size={tc['batch_size']} max_steps={tc['max_steps_per_episode']}")
    started = time.perf_counter()
    q_table, rewards = qlearning.train(
        env, episodes=tc["episodes"], learning_rate=tc["learning_rate"], gamma=tc["gamma"],
        batch_size=tc["batch_size"], max_steps=tc["max_steps_per_episode"], seed=seed,
        on_episode=lambda i, reward: progress(f"Episode {i}: reward={reward:.2f}"))
    seconds = time.perf_counter() - started
    check = qlearning.convergence(rewards)
    metrics = {
        "episodes": len(rewards),
        "rewards": rewards,
        "final_reward": rewards[-1],
        "avg_reward": sum(rewards) / len(rewards),
        "best_reward": max(rewards),
        "convergence": check["converged"],
        "convergence_detail": check,
        "algorithm": "tabular-q-learning",
        "alpha": alpha,
        "final_epsilon": qlearning.epsilon(len(rewards) - 1, len(rewards)),
        "train_seconds": round(seconds, 3),
    }
    training = {key: tc[key] for key in ("episodes", "learning_rate", "batch_size", "gamma", "max_steps_per_episode")}
    policy.save(ctx, env, q_table, {
        "algorithm": "tabular-q-learning", "alpha": alpha, "training_config": training,
        "env_source": upstream[0] if upstream else None,
        "final_reward": metrics["final_reward"], "avg_reward": metrics["avg_reward"],
        "convergence": metrics["convergence"]})
    progress(f"done: avg_reward={metrics['avg_reward']:.2f} final_reward={metrics['final_reward']:.2f} "
             f"convergence={metrics['convergence']} in {seconds:.2f}s")
    return metrics


if __name__ == "__main__":
    run_component(run)
