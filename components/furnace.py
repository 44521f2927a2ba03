"""The furnace design-optimisation environment of the example App (docs/spec.md §2.2).

State: continuous (temperature, pressure), observed as a `temp_bins` x `pressure_bins` grid.
Actions: hold, heat up, heat down, pressure up, pressure down. Each step the furnace cools
towards ambient (0.5 * max_temp) and leaks pressure, plus Gaussian process noise.
Efficiency = exp(-((T - T_opt) / 0.12 max_temp)^2) * exp(-((P - P_opt) / 0.5 s)^2) with
T_opt = optimal_temp_ratio * max_temp, P_opt = min_pressure + 0.5 s, s = min_pressure (1 if 0).
Violation = [T > max_temp] + [P < min_pressure].
Reward per step = efficiency_weight * efficiency - safety_weight * violation.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

from components.runtime import Context, InputError, loads, number

ACTIONS = ("hold", "heat_up", "heat_down", "pressure_up", "pressure_down")
_HEAT = (0, 1, -1, 0, 0)
_PUMP = (0, 0, 0, 1, -1)
FORMAT = "avatar.furnace-env/1"
ENV_JSON = "env.json"

Policy = Callable[[float, float], int]


@dataclass(frozen=True)
class FurnaceConfig:
    max_temp: float = 850.0
    min_pressure: float = 10.0
    simulation_seed: int = 0
    optimal_temp_ratio: float = 0.9
    noise: float = 1.0
    temp_bins: int = 16
    pressure_bins: int = 12

    @classmethod
    def parse(cls, env_config: Mapping[str, Any], section: str = "env_config") -> "FurnaceConfig":
        """Validated config; unknown keys are ignored (see `ignored_keys`)."""
        if not isinstance(env_config, Mapping):
            raise InputError(f"{section} must be a JSON object, got {env_config!r}")
        rules: dict[str, dict[str, Any]] = {
            "max_temp": {"above": 0, "maximum": 100_000},
            "min_pressure": {"minimum": 0, "maximum": 100_000},
            "simulation_seed": {"minimum": 0, "maximum": 2**63 - 1, "integer": True},
            "optimal_temp_ratio": {"above": 0.5, "maximum": 0.99},
            "noise": {"minimum": 0, "maximum": 5},
            "temp_bins": {"minimum": 4, "maximum": 64, "integer": True},
            "pressure_bins": {"minimum": 4, "maximum": 64, "integer": True},
        }
        values = {key: number(section, key, env_config[key], **rule)
                  for key, rule in rules.items() if key in env_config}
        return cls(**values)

    @staticmethod
    def ignored_keys(env_config: Mapping[str, Any]) -> list[str]:
        known = {f.name for f in fields(FurnaceConfig)}
        return sorted(k for k in env_config if k not in known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RewardWeights:
    efficiency_weight: float = 0.6
    safety_weight: float = 0.4

    @classmethod
    def parse(cls, reward_params: Mapping[str, Any], section: str = "reward_params") -> "RewardWeights":
        if not isinstance(reward_params, Mapping):
            raise InputError(f"{section} must be a JSON object, got {reward_params!r}")
        values = {key: number(section, key, reward_params[key], minimum=0, maximum=1_000)
                  for key in ("efficiency_weight", "safety_weight") if key in reward_params}
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class Furnace:
    def __init__(self, config: FurnaceConfig, weights: RewardWeights = RewardWeights()):
        self.config, self.weights = config, weights
        mt = config.max_temp
        self.max_temp = mt
        self.t_lo, self.t_hi = 0.5 * mt, 1.15 * mt
        self.t_opt, self.t_width = config.optimal_temp_ratio * mt, 0.12 * mt
        self.heat_step, self.cooling, self.t_noise = 0.04 * mt, 0.01, 0.008 * mt * config.noise
        self.min_pressure = config.min_pressure
        scale = config.min_pressure if config.min_pressure > 0 else 1.0
        self.p_lo, self.p_hi = max(0.0, config.min_pressure - scale), config.min_pressure + 2 * scale
        self.p_opt, self.p_width = config.min_pressure + 0.5 * scale, 0.5 * scale
        self.pump_step, self.leak, self.p_noise = 0.15 * scale, 0.01, 0.03 * scale * config.noise
        self.n_temp, self.n_pres = config.temp_bins, config.pressure_bins
        self.n_states, self.n_actions = self.n_temp * self.n_pres, len(ACTIONS)
        self._t_scale = self.n_temp / (self.t_hi - self.t_lo)
        self._p_scale = self.n_pres / (self.p_hi - self.p_lo)

    def describe(self) -> dict[str, Any]:
        """The dynamics as env.json records them."""
        return {
            "temperature": {"range": [self.t_lo, self.t_hi], "optimum": self.t_opt, "width": self.t_width,
                            "heat_step": self.heat_step, "cooling_rate": self.cooling,
                            "noise_sd": self.t_noise, "limit_max": self.max_temp},
            "pressure": {"range": [self.p_lo, self.p_hi], "optimum": self.p_opt, "width": self.p_width,
                         "pump_step": self.pump_step, "leak_rate": self.leak,
                         "noise_sd": self.p_noise, "limit_min": self.min_pressure},
            "observation": {"temp_bins": self.n_temp, "pressure_bins": self.n_pres,
                            "states": self.n_states, "state_index": "temp_bin * pressure_bins + pressure_bin"},
            "actions": list(ACTIONS),
            "reward": "efficiency_weight * efficiency - safety_weight * "
                      "([T > max_temp] + [P < min_pressure])",
        }

    def reset(self, u_temp: float, u_pres: float) -> tuple[float, float]:
        """A start state from two uniforms in [0, 1): anywhere at or below max_temp."""
        return (self.t_lo + u_temp * (self.max_temp - self.t_lo),
                self.p_lo + u_pres * (self.p_hi - self.p_lo))

    def observe(self, t: float, p: float) -> int:
        ti = int((t - self.t_lo) * self._t_scale)
        pi = int((p - self.p_lo) * self._p_scale)
        ti = 0 if ti < 0 else (self.n_temp - 1 if ti >= self.n_temp else ti)
        pi = 0 if pi < 0 else (self.n_pres - 1 if pi >= self.n_pres else pi)
        return ti * self.n_pres + pi

    def state_centre(self, state: int) -> tuple[float, float]:
        ti, pi = divmod(state, self.n_pres)
        return (self.t_lo + (ti + 0.5) / self._t_scale, self.p_lo + (pi + 0.5) / self._p_scale)

    def assess(self, t: float, p: float) -> tuple[float, int, int]:
        """(efficiency in [0, 1], temperature violation 0/1, pressure violation 0/1)."""
        dt = (t - self.t_opt) / self.t_width
        dp = (p - self.p_opt) / self.p_width
        return math.exp(-dt * dt - dp * dp), int(t > self.max_temp), int(p < self.min_pressure)

    def step(self, t: float, p: float, action: int, z_temp: float, z_pres: float) -> tuple[float, float, float]:
        """Next (temperature, pressure, reward); z_* are standard-normal noise draws."""
        t += _HEAT[action] * self.heat_step - self.cooling * (t - self.t_lo) + self.t_noise * z_temp
        p += _PUMP[action] * self.pump_step - self.leak * (p - self.p_lo) + self.p_noise * z_pres
        t = self.t_lo if t < self.t_lo else (self.t_hi if t > self.t_hi else t)
        p = self.p_lo if p < self.p_lo else (self.p_hi if p > self.p_hi else p)
        eff, hot, low = self.assess(t, p)
        return t, p, self.weights.efficiency_weight * eff - self.weights.safety_weight * (hot + low)


def setpoint_policy(env: Furnace, t_set: float, p_set: float) -> Policy:
    """A simple controller that steers towards (t_set, p_set), correcting the larger error first."""
    def act(t: float, p: float) -> int:
        et = (t_set - t) / env.heat_step
        ep = (p_set - p) / env.pump_step
        if abs(et) < 0.5 and abs(ep) < 0.5:
            return 0
        if abs(et) >= abs(ep):
            return 1 if et > 0 else 2
        return 3 if ep > 0 else 4
    return act


def table_policy(env: Furnace, greedy: list[int]) -> Policy:
    return lambda t, p: greedy[env.observe(t, p)]


def random_policy(rng: Any, steps: int, n_actions: int = len(ACTIONS)) -> Policy:
    draws = iter(rng.integers(0, n_actions, steps).tolist())
    return lambda t, p: next(draws)


def rollout(env: Furnace, act: Policy, episodes: int, max_steps: int, rng: Any) -> list[dict[str, float]]:
    """Runs `episodes` episodes; per episode the total reward and steady-state statistics
    (means over the second half of the episode)."""
    results = []
    settle = max_steps // 2
    for _ in range(episodes):
        t, p = env.reset(*rng.random(2).tolist())
        z_temp = rng.standard_normal(max_steps).tolist()
        z_pres = rng.standard_normal(max_steps).tolist()
        total = eff_sum = temp_sum = pres_sum = 0.0
        hot_steps = low_steps = 0
        for k in range(max_steps):
            t, p, reward = env.step(t, p, act(t, p), z_temp[k], z_pres[k])
            total += reward
            eff, hot, low = env.assess(t, p)
            hot_steps += hot
            low_steps += low
            if k >= settle:
                eff_sum += eff
                temp_sum += t
                pres_sum += p
        tail = max_steps - settle
        results.append({"reward": total, "temp_violation_rate": hot_steps / max_steps,
                        "pressure_violation_rate": low_steps / max_steps,
                        "steady_efficiency": eff_sum / tail, "steady_temperature": temp_sum / tail,
                        "steady_pressure": pres_sum / tail})
    return results


def summarise(results: list[dict[str, float]]) -> dict[str, float]:
    """Means over episodes of every per-episode statistic, plus reward spread."""
    n = len(results)
    summary = {f"mean_{key}": sum(r[key] for r in results) / n for key in results[0]}
    rewards = [r["reward"] for r in results]
    mean = summary["mean_reward"]
    summary["std_reward"] = math.sqrt(sum((x - mean) ** 2 for x in rewards) / n)
    summary["min_reward"], summary["max_reward"] = min(rewards), max(rewards)
    return summary


def upstream_env(ctx: Context) -> tuple[str, Mapping[str, Any]] | None:
    """(uri, env_config) of the env.json in the first input prefix that has one."""
    found = ctx.find_input(ENV_JSON)
    if found is None:
        return None
    description = loads(*found)
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise InputError(f"{found[0]} is not a {FORMAT} document")
    return found[0], description.get("env_config", {})


def furnace(training: Mapping[str, Any], upstream: tuple[str, Mapping[str, Any]] | None = None) -> Furnace:
    """The furnace for this run, scored with training_config.reward_params: an upstream artifact's
    env_config (uri, config) wins; training_config.env_config is validated either way."""
    config = FurnaceConfig.parse(training["env_config"])
    if upstream is not None:
        config = FurnaceConfig.parse(upstream[1], f"{upstream[0]} env_config")
    return Furnace(config, RewardWeights.parse(training["reward_params"]))
