"""Tabular Q-learning with epsilon decay and experience replay, in plain Python loops over a
small table (faster than numpy for per-step updates on a few hundred states)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from components.furnace import Furnace

LR_SCALE = 100.0      # tabular step size alpha = LR_SCALE * learning_rate ...
ALPHA_MAX = 0.5       # ... capped, so 0.001 -> 0.1
EPSILON_MIN = 0.02
EXPLORE_FRACTION = 0.5  # epsilon decays linearly 1 -> EPSILON_MIN over this share of episodes
REPLAY_CAPACITY = 20_000


def step_size(learning_rate: float) -> float:
    return min(ALPHA_MAX, LR_SCALE * learning_rate)


def epsilon(episode: int, episodes: int) -> float:
    """Exploration rate for 0-based `episode` of `episodes`."""
    horizon = max(1.0, EXPLORE_FRACTION * episodes)
    return max(EPSILON_MIN, 1.0 - episode / horizon)


def train(env: Furnace, *, episodes: int, learning_rate: float, gamma: float, batch_size: int,
          max_steps: int, seed: int, on_episode: Callable[[int, float], None]) -> tuple[np.ndarray, list[float]]:
    """Returns (Q table of shape (states, actions), total reward per episode)."""
    rng = np.random.default_rng(seed)
    alpha = step_size(learning_rate)
    n_actions = env.n_actions
    table = [[0.0] * n_actions for _ in range(env.n_states)]
    replay: list[tuple[int, int, float, int]] = []
    slot = 0
    steps = 0
    rewards: list[float] = []
    step, observe = env.step, env.observe
    for episode in range(episodes):
        eps = epsilon(episode, episodes)
        t, p = env.reset(*rng.random(2).tolist())
        z_temp = rng.standard_normal(max_steps).tolist()
        z_pres = rng.standard_normal(max_steps).tolist()
        explore = rng.random(max_steps).tolist()
        random_actions = rng.integers(0, n_actions, max_steps).tolist()
        state = observe(t, p)
        total = 0.0
        for k in range(max_steps):
            q = table[state]
            if explore[k] < eps:
                action = random_actions[k]
            else:
                action = q.index(max(q))
            t, p, reward = step(t, p, action, z_temp[k], z_pres[k])
            nxt = observe(t, p)
            q[action] += alpha * (reward + gamma * max(table[nxt]) - q[action])
            total += reward
            if len(replay) < REPLAY_CAPACITY:
                replay.append((state, action, reward, nxt))
            else:
                replay[slot] = (state, action, reward, nxt)
                slot = (slot + 1) % REPLAY_CAPACITY
            steps += 1
            if steps % batch_size == 0:
                for i in rng.integers(0, len(replay), batch_size).tolist():
                    s, a, r, s2 = replay[i]
                    qs = table[s]
                    qs[a] += alpha * (r + gamma * max(table[s2]) - qs[a])
            state = nxt
        rewards.append(total)
        on_episode(episode + 1, total)
    return np.array(table), rewards


CV_THRESHOLD = 0.1


def convergence(rewards: list[float]) -> dict[str, float | int | bool]:
    """Converged = the last tenth of episodes beats the first tenth on mean reward AND the last
    tenth is stable: coefficient of variation std/|mean| <= CV_THRESHOLD (tenth = max(1, n // 10))."""
    window = max(1, len(rewards) // 10)
    first, last = np.array(rewards[:window]), np.array(rewards[-window:])
    first_mean, last_mean = float(first.mean()), float(last.mean())
    cv = float(last.std() / abs(last_mean)) if last_mean != 0 else float("inf")
    return {"window": window, "first_mean": first_mean, "last_mean": last_mean,
            "last_cv": cv if np.isfinite(cv) else None, "cv_threshold": CV_THRESHOLD,
            "converged": bool(last_mean > first_mean and cv <= CV_THRESHOLD)}
