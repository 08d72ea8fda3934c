"""Builds the environments and the network a ``TrainConfig`` names (lazy imports: the toy needs no simulator)."""

from __future__ import annotations

from functools import partial

from policies.training.actor_critic import ActorCritic
from policies.training.config import EnvConfig, PolicySpec, TrainConfig
from policies.training.env import TrainingEnv
from policies.training.toy_cmdp import MLPActorCritic, ToyCMDP
from safevla_node.errors import ConfigError
from sim_bridge.interface import SimBackend

__all__ = ["make_env_factories", "make_policy"]


def _mujoco_backend(camera_size: tuple[int, int], difficulty: str) -> SimBackend:
    from sim_bridge.homegen import HomeGenConfig
    from sim_bridge.registry import make_backend

    return make_backend("mujoco", camera_size=camera_size, depth=False,
                        home_config=HomeGenConfig.for_difficulty(difficulty))


def _mujoco(cfg: EnvConfig, slot: int) -> TrainingEnv:
    from policies.training.sim_env import SimTaskEnv

    difficulty = cfg.difficulties[slot % len(cfg.difficulties)]
    return SimTaskEnv(partial(_mujoco_backend, cfg.camera_size, difficulty), cfg.tasks, cfg.max_episode_steps,
                      cfg.success_reward)


def _toy(cfg: EnvConfig, slot: int) -> TrainingEnv:  # noqa: ARG001 (every toy slot is the same CMDP)
    return ToyCMDP(cfg.toy_rewards, cfg.toy_costs, cfg.toy_horizon)


def make_env_factories(cfg: EnvConfig) -> list[partial[TrainingEnv]]:
    """One picklable factory per environment slot (worker processes call them); MuJoCo slots take the
    difficulties in turn."""
    build = {"toy": _toy, "mujoco": _mujoco}[cfg.kind]
    return [partial(build, cfg, slot) for slot in range(cfg.num_envs)]


def make_policy(config: TrainConfig, num_actions: int, num_costs: int, obs_dim: int = 1) -> ActorCritic:
    """The network of ``config.policy``, from its init checkpoint or seeded from scratch.

    ``num_costs`` is the number of constraints (1 in 'sum' mode).

    Raises:
        ConfigError: a combination the network cannot serve (a SafeVLA action space other than the
            environment's, episodes longer than the KV cache).
    """
    spec: PolicySpec = config.policy
    if spec.kind == "toy_mlp":
        if spec.init is not None:
            raise ConfigError("policy.init is for kind 'safevla'; the toy MLP always starts from its seed")
        import torch

        torch.manual_seed(config.seed)
        return MLPActorCritic(obs_dim, num_actions, num_costs, spec.hidden)
    from policies.training.safevla_actor_critic import SafeVLAActorCritic

    policy = (SafeVLAActorCritic.from_pretrained(spec.init, num_costs) if spec.init is not None
              else SafeVLAActorCritic.from_scratch(spec.config, config.seed, num_costs))
    if policy.num_actions != num_actions:
        raise ConfigError(f"the policy has {policy.num_actions} actions, the environment {num_actions}")
    if config.env.max_episode_steps > policy.config.max_steps:
        raise ConfigError(f"env.max_episode_steps={config.env.max_episode_steps} exceeds the policy's KV cache "
                          f"(max_steps={policy.config.max_steps}); training recomputes whole episodes")
    return policy
