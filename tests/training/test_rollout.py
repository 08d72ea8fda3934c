"""Rollout workers: processes over pipes return the same data as in-process stepping; failures name the slot."""

from __future__ import annotations

from functools import partial

import pytest

from policies.training.env import episode_seed
from policies.training.rollout import InProcessVecEnv, SubprocVecEnv, make_vec_env
from policies.training.toy_cmdp import ToyCMDP
from safevla_node.errors import TrainingError

TOY = partial(ToyCMDP, [0.0, 1.0], [[0.0], [1.0]], 3)


def _drive(vec, steps: int = 7):
    out = [vec.reset([0, 5])]
    for t in range(steps):
        r = vec.step([t % 2, 1])
        out.append(([o.tolist() for o in r.observations], r.rewards, r.costs, r.dones, r.episodes))
    return out, vec.episode_indices


def test_worker_processes_return_what_in_process_stepping_returns_and_name_a_failing_slot():
    with InProcessVecEnv([TOY, TOY], base_seed=3) as local, SubprocVecEnv([TOY, TOY], base_seed=3) as remote:
        (a, ep_a), (b, ep_b) = _drive(local), _drive(remote)
        assert str(a) == str(b)
        assert ep_a == ep_b == [2, 7]  # 7 steps of 3-step episodes: two finished per slot
        with pytest.raises(TrainingError, match=r"rollout worker 0 failed:(.|\n)*toy action 9 out of range"):
            remote.step([9, 0])


def test_finished_episodes_report_return_cost_and_length():
    with InProcessVecEnv([TOY], base_seed=0) as vec:
        vec.reset([0])
        summaries = [vec.step([1]).episodes[0] for _ in range(3)]
    assert summaries[:2] == [None, None]
    assert (summaries[2].reward, summaries[2].costs, summaries[2].length) == (3.0, (3.0,), 3)


def test_episode_seeds_differ_across_ranks_slots_and_episodes():
    seeds = {episode_seed(0, r, s, e) for r in range(2) for s in range(4) for e in range(50)}
    assert len(seeds) == 2 * 4 * 50


def test_unknown_worker_kind_is_rejected():
    with pytest.raises(ValueError, match="workers='threads' must be 'inprocess' or 'subprocess'"):
        make_vec_env([TOY], "threads", 0)
