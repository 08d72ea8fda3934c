"""Multiplier updates against sequences computed by hand (PID) and by an independent numpy Adam (Lagrange)."""

from __future__ import annotations

import numpy as np
import pytest

from policies.training.lagrange import Lagrange, MultiplierSet, PIDLagrange
from safevla_node.errors import ConfigError


def _numpy_adam_lambda(init: float, lr: float, limit: float, costs: list[float]) -> list[float]:
    """Adam (betas 0.9/0.999, eps 1e-8) on the loss -lambda * (Jc - limit), then max(0, .)."""
    lam, m, v, out = max(init, 1e-5), 0.0, 0.0, []
    for t, jc in enumerate(costs, start=1):
        g = -(jc - limit)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
        lam = max(0.0, lam - lr * m_hat / (np.sqrt(v_hat) + 1e-8))
        out.append(lam)
    return out


def test_lagrange_follows_adam_with_safevla_settings_step_by_step():
    costs = [5.0, 4.0, 3.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    multiplier = Lagrange(cost_limit=2.31, init=0.001, lr=0.035)
    got = [multiplier.update(c) for c in costs]
    np.testing.assert_allclose(got, _numpy_adam_lambda(0.001, 0.035, 2.31, costs), rtol=0, atol=1e-12)
    assert got[0] == pytest.approx(0.001 + 0.035, abs=1e-9)  # Adam's first step is lr in the sign of Jc - d
    assert got[-1] == 0.0  # projected onto lambda >= 0


def test_lagrange_respects_its_upper_bound():
    multiplier = Lagrange(cost_limit=0.0, init=0.5, lr=0.3, upper_bound=0.6)
    assert [multiplier.update(10.0) for _ in range(3)] == [0.6, 0.6, 0.6]


def test_lagrange_state_round_trip_continues_identically():
    a = Lagrange(2.0)
    for c in (3.0, 4.0):
        a.update(c)
    b = Lagrange(2.0)
    b.load_state_dict(a.state_dict())
    assert [a.update(c) for c in (1.0, 5.0, 0.0)] == [b.update(c) for c in (1.0, 5.0, 0.0)]


def test_pid_lagrange_matches_the_hand_computed_sequence():
    pid = PIDLagrange(cost_limit=1.0, kp=0.1, ki=0.01, kd=0.01, d_delay=2, delta_p_ema=0.95, delta_d_ema=0.95,
                      init=0.001)
    assert pid.value == 0.0  # omnisafe: no penalty before the first update
    # delta, I, P, EMA(Jc), D worked out in the test module's notes:
    # 1: Jc=3: I=0.021, P=0.1, ema=0.15, D=0.15-0 -> 0.01+0.021+0.0015
    # 2: Jc=3: I=0.041, P=0.195, ema=0.2925, D=0.2925-0 -> 0.0195+0.041+0.002925
    # 3: Jc=0: I=0.031, P=0.13525, ema=0.277875, D=0.277875-0.15 -> 0.013525+0.031+0.00127875
    # 4: Jc=0: I=0.021, P=0.0784875, ema=0.26398125, D=max(0, 0.26398125-0.2925)=0
    expected = [0.0325, 0.063425, 0.04580375, 0.02884875]
    np.testing.assert_allclose([pid.update(c) for c in (3.0, 3.0, 0.0, 0.0)], expected, rtol=0, atol=1e-12)


def test_pid_lagrange_integral_and_output_never_go_negative():
    pid = PIDLagrange(cost_limit=5.0, kp=1.0, ki=0.5, kd=0.0, d_delay=1)
    values = [pid.update(0.0) for _ in range(4)]
    assert values == [0.0] * 4
    assert pid.state_dict()["i"] == 0.0


def test_pid_lagrange_state_round_trip_continues_identically():
    a = PIDLagrange(1.0, d_delay=3)
    for c in (2.0, 5.0, 0.5):
        a.update(c)
    b = PIDLagrange(1.0, d_delay=3)
    b.load_state_dict(a.state_dict())
    assert [a.update(c) for c in (3.0, 0.0, 1.0, 7.0)] == [b.update(c) for c in (3.0, 0.0, 1.0, 7.0)]


def test_multiplier_set_updates_each_constraint_with_its_own_cost():
    limits = {"corner": 1.0, "danger": 0.5}
    ms = MultiplierSet(tuple(limits), lambda n: Lagrange(limits[n], init=0.0, lr=0.1))
    values = ms.update([3.0, 0.0])
    assert values[0] == pytest.approx(1e-5 + 0.1, abs=1e-6)  # init floored at 1e-5, violated: up by lr
    assert values[1] == 0.0  # satisfied: from 1e-5 down, projected to 0
    with pytest.raises(ValueError, match="expected 2 episode costs"):
        ms.update([1.0])


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Lagrange(-1.0), "cost_limit=-1.0 must be >= 0"),
    (lambda: Lagrange(1.0, lr=0.0), "lagrange lr=0.0 must be > 0"),
    (lambda: PIDLagrange(1.0, d_delay=0), "d_delay=0 must be >= 1"),
    (lambda: PIDLagrange(1.0, delta_p_ema=1.0), r"delta_p_ema=1.0 must be in \[0, 1\)"),
    (lambda: MultiplierSet(("a", "a"), lambda n: Lagrange(1.0)), "unique"),
])
def test_multiplier_settings_out_of_range_are_rejected(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_multiplier_rejects_a_non_finite_episode_cost():
    with pytest.raises(ValueError, match="must be finite"):
        Lagrange(1.0).update(float("nan"))
