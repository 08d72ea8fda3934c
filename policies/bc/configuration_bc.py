"""Typed, validated settings of behaviour-cloning training (``config/train_bc.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safevla_node.config import check_range, field, from_mapping, load_yaml
from safevla_node.errors import ConfigError

__all__ = ["TrainConfig", "load_train_config"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of ``policies.bc.train``; one seed makes a run reproducible."""

    policy_config: str = field("config/policy_tiny.yaml", "policy YAML (network sizes) to train")
    seed: int = field(0, "seeds the weights and the batch order")
    epochs: int = field(6, "passes over the dataset")
    batch_episodes: int = field(8, "whole episodes per optimisation step")
    max_episodes: int = field(0, "use only the N lowest-seed shards, tasks alternating (0: all)")
    learning_rate: float = field(1e-3, "AdamW peak learning rate (after warm-up, cosine decay to 10%)")
    weight_decay: float = field(0.01, "AdamW weight decay")
    warmup_steps: int = field(20, "linear learning-rate warm-up steps")
    grad_clip: float = field(1.0, "gradient-norm clip (0: off)")
    log_every: int = field(10, "steps between progress lines")
    save_every: int = field(100, "steps between resumable training-state checkpoints")

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("batch_episodes", 1), ("max_episodes", 0), ("warmup_steps", 0),
                          ("log_every", 1), ("save_every", 1), ("seed", 0)):
            check_range(f"TrainConfig.{name}", getattr(self, name), low)
        check_range("TrainConfig.learning_rate", self.learning_rate, 1e-7, 1.0)
        check_range("TrainConfig.weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("TrainConfig.grad_clip", self.grad_clip, 0.0)


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML into a validated TrainConfig.

    Raises:
        ConfigError: missing file, unknown keys or out-of-range values (naming the file and field).
    """
    try:
        return from_mapping(TrainConfig, load_yaml(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
