"""The tabular policy artifact: `policy.npz` (arrays) + `policy.json` (metadata, sha256 of the npz).

Written by rl_agent, read by reward_calc and param_optimizer."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from components.furnace import ACTIONS, Furnace, FurnaceConfig
from components.runtime import Context, InputError, load_npz, loads, split_uri

POLICY_NPZ = "policy.npz"
POLICY_JSON = "policy.json"
FORMAT = "avatar.tabular-q/1"


@dataclass
class Policy:
    uri: str
    q_table: np.ndarray
    meta: dict[str, Any]

    @property
    def greedy(self) -> list[int]:
        return self.q_table.argmax(axis=1).tolist()

    @property
    def upstream(self) -> tuple[str, Mapping[str, Any]]:
        """(uri, env_config) of the furnace the policy was trained on, for `furnace.furnace`."""
        return self.uri, self.meta.get("env_config", {})


def save(ctx: Context, env: Furnace, q_table: np.ndarray, meta: Mapping[str, Any]) -> dict[str, str]:
    t_edges = np.linspace(env.t_lo, env.t_hi, env.n_temp + 1)
    p_edges = np.linspace(env.p_lo, env.p_hi, env.n_pres + 1)
    npz_uri, sha256 = ctx.write_npz(POLICY_NPZ, q_table=q_table, greedy_policy=q_table.argmax(axis=1),
                                    temp_edges=t_edges, pressure_edges=p_edges)
    document = {"format": FORMAT, "actions": list(ACTIONS), "env_config": env.config.to_dict(),
                "reward_params": env.weights.to_dict(), "sha256": sha256, "artifact": POLICY_NPZ,
                **ctx.identity(), **meta}
    return {"policy_npz": npz_uri, "policy_json": ctx.write_json(POLICY_JSON, document)}


def find(ctx: Context, hints: Iterable[str] = ()) -> Policy | None:
    """The policy in the first input prefix holding policy.npz, else at one of `hints`
    (object URIs recorded by an upstream component), else None."""
    found = ctx.find_input(POLICY_NPZ)
    if found is None:
        for uri in hints:
            data = ctx.read_uri(uri)
            if data is not None:
                found = (uri, data)
                break
    if found is None:
        return None
    uri, data = found
    where, _ = split_uri(uri)
    meta_bytes = ctx.storage.get(where, POLICY_JSON)
    if meta_bytes is None:
        raise InputError(f"{uri} has no {POLICY_JSON} beside it")
    meta = loads(where.uri(POLICY_JSON), meta_bytes)
    if meta.get("format") != FORMAT:
        raise InputError(f"{where.uri(POLICY_JSON)} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("sha256") != hashlib.sha256(data).hexdigest():
        raise InputError(f"{uri} does not match the sha256 recorded in {POLICY_JSON}")
    arrays = load_npz(uri, data)
    config = FurnaceConfig.parse(meta.get("env_config", {}), f"{where.uri(POLICY_JSON)} env_config")
    expected = (config.temp_bins * config.pressure_bins, len(ACTIONS))
    if "q_table" not in arrays or arrays["q_table"].shape != expected:
        raise InputError(f"{uri} has no q_table of shape {expected} (temp_bins * pressure_bins, actions)")
    return Policy(uri, arrays["q_table"], meta)
