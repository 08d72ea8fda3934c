"""The toy-CMDP training config the tests share (config/train_toy.yaml's settings, quick to override)."""

from __future__ import annotations

from typing import Any

from policies.training.config import TrainConfig
from safevla_node.config import from_mapping


def toy_config(**overrides: Any) -> TrainConfig:
    """The toy CMDP run of config/train_toy.yaml, with top-level or nested overrides."""
    data: dict[str, Any] = {
        "seed": 0, "updates": 150, "checkpoint_every": 1000, "log_every": 1000,
        "ppo": {"rollout_steps": 16, "lr": 0.02},
        "constraint": {"method": "lagrange", "cost_limit": 2.0, "lagrange": {"lr": 0.2},
                       "pid": {"kp": 0.5, "ki": 0.1, "kd": 0.0}},
        "env": {"kind": "toy", "num_envs": 8, "toy_horizon": 8},
        "policy": {"kind": "toy_mlp", "hidden": 16},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return from_mapping(TrainConfig, data)
