"""Constrained (Lagrangian / PID-Lagrangian) PPO fine-tuning of SafeVLA on the embedded simulator.

Modules: ``lagrange`` (multipliers), ``ppo`` (buffer, GAE, loss), ``rollout`` (vectorised environments),
``trainer`` (loop, logs, checkpoints), ``distributed`` (torchrun / DDP), ``toy_cmdp`` (a CMDP with a known
optimum), ``actor_critic`` (the protocol), ``safevla_actor_critic`` (the SafeVLA model behind it),
``sim_env`` (a simulator backend as a training environment), ``launch`` (the command line), ``curves``
(metrics.csv as a PNG).
"""

from policies.training.actor_critic import ActorCritic, Heads, Segment
from policies.training.config import TrainConfig, load_train_config
from policies.training.lagrange import Lagrange, MultiplierSet, PIDLagrange
from policies.training.ppo import PPOLearner, RolloutBuffer, combined_advantage, gae
from policies.training.trainer import Trainer

__all__ = ["ActorCritic", "Heads", "Lagrange", "MultiplierSet", "PIDLagrange", "PPOLearner", "RolloutBuffer",
           "Segment", "TrainConfig", "Trainer", "combined_advantage", "gae", "load_train_config"]
