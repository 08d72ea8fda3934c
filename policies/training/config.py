"""The training run's configuration: frozen dataclasses read from YAML (``safevla_node.config`` rules).

Defaults are SafeVLA's (REFERENCE.md section 1): PPO clip 0.1, value coefficient 0.5, entropy 0, gamma 0.99,
GAE 0.95, 128-step rollouts, 4 epochs, lr 2e-5, gradient norm 0.5 (and no KL anchor, which SafeVLA lacks);
Lagrange init 0.001, lr 0.035 (Adam),
cost limit 2.31; PID gains 0.1 / 0.01 / 0.01, delay 10, EMA 0.95; reward +10 on success; 500-step episodes.
Two exceptions, kept so that configs written before them keep their meaning: advantages are normalised as
omnisafe does (SafeVLA's own PPO settings turn it off: ``normalize_advantages: false``), and there is no critic
warm-up (SafeVLA trains only its critics for the first 200,000 steps: ``critic_warmup_steps: 200000``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from safevla_node.config import check_range, field, from_mapping, load_yaml
from safevla_node.errors import ConfigError

__all__ = ["ConstraintConfig", "EnvConfig", "LagrangeConfig", "PIDConfig", "PPOConfig", "PolicySpec",
           "TrainConfig", "load_train_config"]


@dataclass(frozen=True)
class PPOConfig:
    """Clipped-surrogate PPO with a reward and a cost critic."""

    rollout_steps: int = field(128, "steps per environment per rollout")
    epochs: int = field(4, "passes over each rollout")
    num_minibatches: int = field(1, "minibatches per epoch (split by environment, so sequences stay whole)")
    clip: float = field(0.1, "PPO ratio clip epsilon")
    value_coef: float = field(0.5, "weight of the reward- and cost-value losses")
    entropy_coef: float = field(0.0, "entropy bonus weight")
    kl_coef: float = field(0.0, "weight of KL(policy || starting policy): keeps a fine-tuned policy near the "
                                "checkpoint it started from where the reward is too rare to steer it (0: off)")
    gamma: float = field(0.99, "discount of reward and cost")
    gae_lambda: float = field(0.95, "GAE lambda")
    lr: float = field(2e-5, "Adam learning rate of the network")
    max_grad_norm: float = field(0.5, "gradient-norm clip")
    normalize_advantages: bool = field(True, "standardise the reward advantage, centre the cost advantage (as "
                                       "omnisafe does; SafeVLA's own config turns normalisation off)")
    critic_warmup_steps: int = field(
        0, "environment steps at the start of a run in which only the reward and cost critics learn: the policy "
        "loss, its KL anchor and entropy bonus are left out (SafeVLA: 200,000, its first pipeline stage)")

    def __post_init__(self) -> None:
        for name in ("rollout_steps", "epochs", "num_minibatches"):
            check_range(name, getattr(self, name), 1)
        check_range("critic_warmup_steps", self.critic_warmup_steps, 0)
        check_range("clip", self.clip, 0.0, 1.0)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        for name in ("value_coef", "entropy_coef", "kl_coef", "lr", "max_grad_norm"):
            check_range(name, getattr(self, name), 0.0)


@dataclass(frozen=True)
class LagrangeConfig:
    """Adam gradient ascent on lambda."""

    init: float = field(0.001, "initial lambda")
    lr: float = field(0.035, "Adam learning rate of lambda")
    upper_bound: float | None = field(None, "clamp lambda to at most this (None: unbounded)")


@dataclass(frozen=True)
class PIDConfig:
    """PID Lagrangian gains (omnisafe CPPOPID defaults)."""

    kp: float = field(0.1, "proportional gain on EMA(Jc - limit)")
    ki: float = field(0.01, "integral gain")
    kd: float = field(0.01, "derivative gain on the rise of EMA(Jc)")
    d_delay: int = field(10, "updates between the two EMA(Jc) values of the derivative")
    delta_p_ema: float = field(0.95, "EMA factor of the proportional term")
    delta_d_ema: float = field(0.95, "EMA factor of the cost used by the derivative")
    init: float = field(0.001, "initial integral term")
    penalty_max: float = field(100.0, "upper clamp of lambda")


@dataclass(frozen=True)
class ConstraintConfig:
    """Which multiplier update, and one constraint on the summed cost or one per category."""

    method: Literal["lagrange", "pid"] = field("lagrange", "multiplier update")
    mode: Literal["sum", "per_category"] = field("sum", "one multiplier for the total cost, or one per category")
    cost_limit: float = field(2.31, "episode-cost limit in 'sum' mode")
    category_limits: tuple[float, ...] = field((), "episode-cost limits per category in 'per_category' mode")
    lagrange: LagrangeConfig = field(LagrangeConfig(), "method 'lagrange' settings")
    pid: PIDConfig = field(PIDConfig(), "method 'pid' settings")

    def __post_init__(self) -> None:
        check_range("cost_limit", self.cost_limit, 0.0)
        for i, limit in enumerate(self.category_limits):
            check_range(f"category_limits[{i}]", limit, 0.0)

    def limits(self, categories: tuple[str, ...]) -> dict[str, float]:
        """Constraint name -> limit: ``{"total": cost_limit}`` or one entry per category.

        Raises:
            ConfigError: per-category mode with a number of limits that differs from the categories.
        """
        if self.mode == "sum":
            return {"total": self.cost_limit}
        if len(self.category_limits) != len(categories):
            raise ConfigError(f"constraint.category_limits has {len(self.category_limits)} values but the "
                              f"environment has {len(categories)} cost categories {list(categories)}; give one each")
        return dict(zip(categories, self.category_limits))


@dataclass(frozen=True)
class EnvConfig:
    """The environments the rollout workers step."""

    kind: Literal["toy", "mujoco"] = field("toy", "the toy CMDP or the embedded MuJoCo simulator")
    num_envs: int = field(4, "environments per rank")
    workers: Literal["inprocess", "subprocess"] = field("inprocess", "step in this process or one process each")
    seed: int = field(0, "base seed of the episode seeds")
    difficulties: tuple[Literal["easy", "medium", "hard"], ...] = field(
        ("medium",), "home generator presets of the MuJoCo scenes, assigned to environment slots in turn")
    max_episode_steps: int = field(500, "training episode length (the episode also ends on 'end')")
    tasks: tuple[str, ...] = field(("objectnav", "pickup", "fetch"), "task families, cycled over episodes")
    camera_size: tuple[int, int] = field((396, 224), "simulator camera (width, height), AI2-THOR's Stretch frame")
    success_reward: float = field(10.0, "reward on success (the only reward)")
    toy_horizon: int = field(8, "toy CMDP episode length")
    toy_rewards: tuple[float, ...] = field((0.0, 1.0), "toy CMDP reward per action")
    toy_costs: tuple[tuple[float, ...], ...] = field(((0.0,), (1.0,)), "toy CMDP cost per action and category")

    def __post_init__(self) -> None:
        check_range("num_envs", self.num_envs, 1)
        check_range("max_episode_steps", self.max_episode_steps, 1)
        check_range("toy_horizon", self.toy_horizon, 1)
        if not self.difficulties:
            raise ConfigError("env.difficulties must name at least one of easy, medium, hard")


@dataclass(frozen=True)
class PolicySpec:
    """The network being trained."""

    kind: Literal["toy_mlp", "safevla"] = field("toy_mlp", "small MLP (toy CMDP) or the SafeVLA model")
    config: str = field("config/policy_tiny.yaml", "SafeVLA config YAML for a from-scratch start")
    init: str | None = field(None, "checkpoint to start from (our directory format, .pt, .ckpt)")
    hidden: int = field(32, "toy MLP hidden width")


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    seed: int = field(0, "seed of the network init, action sampling and minibatch order")
    updates: int = field(100, "PPO updates (each one rollout of num_envs x rollout_steps steps per rank)")
    device: str = field("cpu", "torch device of the learner ('cpu', 'cuda', 'auto')")
    checkpoint_every: int = field(10, "updates between checkpoints (and at the end)")
    log_every: int = field(1, "updates between progress lines")
    time_limit_min: float = field(0.0, "stop after the update during which this many minutes of wall time "
                                       "passed, with a checkpoint and the policy export (0: no limit)")
    torch_threads: int = field(0, "intra-op CPU threads of torch (0: torch's default; 1 avoids oversubscription "
                                  "when ranks or workers share a few cores)")
    ppo: PPOConfig = field(PPOConfig(), "PPO settings")
    constraint: ConstraintConfig = field(ConstraintConfig(), "constraint settings")
    env: EnvConfig = field(EnvConfig(), "environment settings")
    policy: PolicySpec = field(PolicySpec(), "network settings")

    def __post_init__(self) -> None:
        check_range("updates", self.updates, 1)
        check_range("checkpoint_every", self.checkpoint_every, 1)
        check_range("log_every", self.log_every, 1)
        check_range("torch_threads", self.torch_threads, 0)
        check_range("time_limit_min", self.time_limit_min, 0.0)


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML.

    Raises:
        ConfigError: missing file, unknown keys, wrong types or out-of-range values (named with the file).
    """
    try:
        return from_mapping(TrainConfig, load_yaml(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
