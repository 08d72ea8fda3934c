"""The privileged expert solves easy homes with the discrete SafeVLA actions, near its own planned length."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim_bridge.expert import Expert, shortest_path_length
from sim_bridge.homegen import HomeGenConfig
from sim_bridge.interface import EpisodeStatus, TaskKind, TaskSpec
from sim_bridge.mujoco import MujocoBackend


@pytest.fixture(scope="module")
def backend() -> Iterator[MujocoBackend]:
    sim = MujocoBackend(home_config=HomeGenConfig.easy(), depth=False)
    yield sim
    sim.close()


def _episode(backend: MujocoBackend, seed: int, kind: TaskKind, infeasible: bool = False) -> EpisodeStatus:
    obs = backend.reset(seed, kind, infeasible=infeasible)
    expert = Expert(backend)
    while not backend.status().done:
        obs = backend.execute_action(expert.act(obs), render=False).observation
    return backend.status()


@pytest.mark.parametrize("kind", list(TaskKind))
@pytest.mark.parametrize("seed", [0, 1])
def test_expert_succeeds_on_easy_homes(backend: MujocoBackend, kind: TaskKind, seed: int) -> None:
    status = _episode(backend, seed, kind)
    assert status.success, backend.task.instruction
    assert status.steps < 200
    assert status.expert_path_length is not None
    # SEL's L*: the executed path stays close to the planned one (0.2 m moves add a little).
    assert status.path_length <= 1.3 * status.expert_path_length + 0.5


def test_expert_ends_an_infeasible_task_without_success(backend: MujocoBackend) -> None:
    status = _episode(backend, 0, TaskKind.PICKUP, infeasible=True)
    assert status.done and not status.success and status.steps == 1


def test_expert_path_length_matches_the_backend_status(backend: MujocoBackend) -> None:
    backend.reset(1, TaskKind.FETCH)
    expert = Expert(backend)
    assert expert.expert_path_length == backend.status().expert_path_length
    assert expert.expert_path_length == shortest_path_length(backend.scene, backend.task)
    pickup_only = TaskSpec(TaskKind.PICKUP, "", backend.task.target_type, backend.task.target_id)
    assert expert.expert_path_length > shortest_path_length(backend.scene, pickup_only)
