"""Lagrange multipliers of the constrained PPO: gradient ascent with Adam, and the PID controller.

Both follow omnisafe (``omnisafe/common/lagrange.py`` ``Lagrange`` and ``omnisafe/common/pid_lagrange.py``
``PIDLagrangian``), which SafeVLA's training uses, step for step:

* ``Lagrange``: lambda is a torch parameter (initialised to ``max(init, 1e-5)``) trained by Adam on the loss
  ``-lambda * (Jc - limit)``, then clamped to ``[0, upper_bound]``. The first Adam step therefore moves lambda
  by about ``lr`` in the sign of ``Jc - limit`` whatever the violation's size.
* ``PIDLagrange`` (Stooke et al. 2020): ``delta = Jc - limit``; ``I = max(0, I + Ki * delta)`` (I starts at
  ``init``); ``P = EMA(delta)``; ``D = max(0, EMA(Jc) - the EMA(Jc) of d_delay updates ago)`` (0 until that
  many updates exist); ``lambda = min(penalty_max, max(0, Kp * P + I + Kd * D))``. Before its first update the
  multiplier is 0, as in omnisafe.

The caller updates the multiplier first with the mean episode cost of the latest rollout, then runs the policy
update with the new value (omnisafe's ``PPOLag._update`` order). ``MultiplierSet`` holds one multiplier per
cost category or one for the summed cost.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from safevla_node.errors import ConfigError

__all__ = ["Lagrange", "Multiplier", "MultiplierSet", "PIDLagrange"]


class Multiplier(ABC):
    """One Lagrange multiplier for one cost constraint ``Jc <= cost_limit``."""

    def __init__(self, cost_limit: float) -> None:
        if not cost_limit >= 0:
            raise ConfigError(f"cost_limit={cost_limit!r} must be >= 0")
        self.cost_limit = float(cost_limit)

    @property
    @abstractmethod
    def value(self) -> float:
        """The current multiplier (>= 0)."""

    @abstractmethod
    def update(self, mean_episode_cost: float) -> float:
        """One update from the mean episode cost of the latest rollout; returns the new value."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly after a restart."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


def _finite(value: float) -> float:
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"mean episode cost must be finite, got {value!r}")
    return value


class Lagrange(Multiplier):
    """Adam gradient ascent on lambda (omnisafe ``Lagrange`` with ``lambda_optimizer='Adam'``)."""

    def __init__(self, cost_limit: float, init: float = 0.001, lr: float = 0.035,
                 upper_bound: float | None = None) -> None:
        super().__init__(cost_limit)
        if not lr > 0:
            raise ConfigError(f"lagrange lr={lr!r} must be > 0")
        self.lr = float(lr)
        self.upper_bound = upper_bound
        self._lambda = torch.nn.Parameter(torch.tensor(max(float(init), 1e-5), dtype=torch.float64))
        self._optimizer = torch.optim.Adam([self._lambda], lr=self.lr)

    @property
    def value(self) -> float:
        return float(self._lambda.detach())

    def update(self, mean_episode_cost: float) -> float:
        jc = _finite(mean_episode_cost)
        self._optimizer.zero_grad()
        loss = -self._lambda * (jc - self.cost_limit)
        loss.backward()
        self._optimizer.step()
        with torch.no_grad():
            self._lambda.clamp_(0.0, self.upper_bound)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"lambda": self.value, "optimizer": copy.deepcopy(self._optimizer.state_dict())}  # a snapshot, not live

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self._lambda.fill_(float(state["lambda"]))
        self._optimizer.load_state_dict(state["optimizer"])


class PIDLagrange(Multiplier):
    """PID controller on the constraint violation (omnisafe ``PIDLagrangian`` without ``diff_norm``)."""

    def __init__(self, cost_limit: float, kp: float = 0.1, ki: float = 0.01, kd: float = 0.01, d_delay: int = 10,
                 delta_p_ema: float = 0.95, delta_d_ema: float = 0.95, init: float = 0.001,
                 penalty_max: float = 100.0) -> None:
        super().__init__(cost_limit)
        if d_delay < 1:
            raise ConfigError(f"pid d_delay={d_delay!r} must be >= 1")
        for name, alpha in (("delta_p_ema", delta_p_ema), ("delta_d_ema", delta_d_ema)):
            if not 0 <= alpha < 1:
                raise ConfigError(f"pid {name}={alpha!r} must be in [0, 1)")
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.d_delay = int(d_delay)
        self.delta_p_ema, self.delta_d_ema = float(delta_p_ema), float(delta_d_ema)
        self.penalty_max = float(penalty_max)
        self._i = float(init)
        self._p = 0.0
        self._cost_ema = 0.0
        self._history: deque[float] = deque([0.0], maxlen=self.d_delay)
        self._penalty = 0.0

    @property
    def value(self) -> float:
        return self._penalty

    def update(self, mean_episode_cost: float) -> float:
        jc = _finite(mean_episode_cost)
        delta = jc - self.cost_limit
        self._i = max(0.0, self._i + self.ki * delta)
        self._p = self.delta_p_ema * self._p + (1 - self.delta_p_ema) * delta
        self._cost_ema = self.delta_d_ema * self._cost_ema + (1 - self.delta_d_ema) * jc
        d = max(0.0, self._cost_ema - self._history[0])
        self._penalty = min(self.penalty_max, max(0.0, self.kp * self._p + self._i + self.kd * d))
        self._history.append(self._cost_ema)
        return self._penalty

    def state_dict(self) -> dict[str, Any]:
        return {"i": self._i, "p": self._p, "cost_ema": self._cost_ema, "history": list(self._history),
                "penalty": self._penalty}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._i, self._p, self._cost_ema = float(state["i"]), float(state["p"]), float(state["cost_ema"])
        self._history = deque((float(v) for v in state["history"]), maxlen=self.d_delay)
        self._penalty = float(state["penalty"])


class MultiplierSet:
    """Named multipliers, one per constraint (a cost category, or ``"total"`` for the summed cost)."""

    def __init__(self, names: Sequence[str], make: Callable[[str], Multiplier]) -> None:
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"constraint names must be unique and non-empty, got {list(names)!r}")
        self.names = tuple(names)
        self.multipliers = {name: make(name) for name in self.names}

    def values(self) -> torch.Tensor:
        """(K,) float32 current multipliers, in ``names`` order."""
        return torch.tensor([self.multipliers[n].value for n in self.names], dtype=torch.float32)

    def update(self, mean_episode_costs: Sequence[float]) -> torch.Tensor:
        """Update every multiplier with its constraint's mean episode cost (``names`` order)."""
        if len(mean_episode_costs) != len(self.names):
            raise ValueError(f"expected {len(self.names)} episode costs ({self.names}), got {len(mean_episode_costs)}")
        for name, cost in zip(self.names, mean_episode_costs):
            self.multipliers[name].update(cost)
        return self.values()

    def state_dict(self) -> dict[str, Any]:
        return {name: m.state_dict() for name, m in self.multipliers.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = set(self.names) ^ set(state)
        if missing:
            raise ValueError(f"multiplier state has constraints {sorted(state)}, this run has {list(self.names)}")
        for name, m in self.multipliers.items():
            m.load_state_dict(state[name])
