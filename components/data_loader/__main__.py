"""data-loader: a seeded synthetic dataset of furnace transitions (state, action, next state,
efficiency, reward, violation), split into train/validation, written as dataset.npz.
The furnace comes from an upstream env.json, else training_config.env_config."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from components.furnace import furnace, upstream_env
from components.runtime import Context, npz_bytes, param, progress, run_component

COLUMNS = ("temperature", "pressure", "action", "next_temperature", "next_pressure",
           "efficiency", "reward", "violation")


def run(ctx: Context) -> dict[str, Any]:
    tc = ctx.training
    env = furnace(tc, upstream_env(ctx))
    rows = param(ctx.params, "rows", 10_000, minimum=1, maximum=10_000_000, integer=True)
    val_fraction = param(ctx.params, "val_fraction", 0.2, minimum=0, maximum=0.9)
    seed = param(ctx.params, "seed", env.config.simulation_seed, minimum=0, maximum=2**63 - 1, integer=True)
    rng = np.random.default_rng(seed)
    starts = rng.random((rows, 2)).tolist()
    actions = rng.integers(0, env.n_actions, rows).tolist()
    noise = rng.standard_normal((rows, 2)).tolist()
    progress(f"generating {rows} transitions with seed {seed}")
    data = np.empty((rows, len(COLUMNS)))
    for i in range(rows):
        # states anywhere in the observed range, not only the safe start region
        t = env.t_lo + starts[i][0] * (env.t_hi - env.t_lo)
        p = env.p_lo + starts[i][1] * (env.p_hi - env.p_lo)
        t2, p2, reward = env.step(t, p, actions[i], noise[i][0], noise[i][1])
        efficiency, hot, low = env.assess(t2, p2)
        data[i] = (t, p, actions[i], t2, p2, efficiency, reward, hot + low)
        if (i + 1) % max(1, rows // 5) == 0:
            progress(f"generated {i + 1}/{rows} rows")
    n_val = int(round(rows * val_fraction))
    order = rng.permutation(rows)
    train, val = data[order[n_val:]], data[order[:n_val]]
    payload = npz_bytes(train=train, val=val, columns=np.array(COLUMNS))
    ctx.write_bytes("dataset.npz", payload)
    return {"rows": rows, "train_rows": len(train), "val_rows": len(val), "columns": list(COLUMNS),
            "seed": seed, "violation_rate": float((data[:, 7] > 0).mean()),
            "mean_reward": float(data[:, 6].mean()), "sha256": hashlib.sha256(payload).hexdigest(),
            "env_config": env.config.to_dict()}


if __name__ == "__main__":
    run_component(run)
