"""The expert reads the world, not its own plan: a straight move that scraped along a wall end is a blocked
move (it backs off instead of repeating it until the budget runs out), and a carried object it no longer
holds is placed only if it lies on the destination (else it picks it up again)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import pytest

from safevla_node.actions import ACTIONS, ACTION_BY_CODE
from sim_bridge.expert import Expert
from sim_bridge.homegen import HomeGenConfig
from sim_bridge.interface import Observation, TaskKind
from sim_bridge.mujoco import MujocoBackend


@pytest.fixture(scope="module")
def backend() -> Iterator[MujocoBackend]:
    sim = MujocoBackend(home_config=HomeGenConfig.easy(), depth=False)
    yield sim
    sim.close()


def _moved(obs: Observation, dx: float, dy: float, dyaw: float) -> Observation:
    """``obs`` with the robot displaced (what a move that scraped along something leaves)."""
    r = obs.snapshot.robot
    robot = dataclasses.replace(r, x=r.x + dx, y=r.y + dy, yaw=r.yaw + dyaw)
    return dataclasses.replace(obs, snapshot=dataclasses.replace(obs.snapshot, robot=robot))


def _first_move(backend: MujocoBackend, expert: Expert, obs: Observation) -> Observation:
    """Run the expert until it proposes a forward move; the observation it proposed it at."""
    while ACTIONS[index := expert.act(obs)].code != "m":
        obs = backend.execute_action(index, render=False).observation
    return obs


def test_a_forward_move_that_turned_the_base_counts_as_blocked(backend: MujocoBackend) -> None:
    obs = backend.reset(0, TaskKind.PICKUP)
    obs = _first_move(backend, expert := Expert(backend), obs)
    r = obs.snapshot.robot
    # It went 0.15 m, but the base turned 20 degrees: it scraped along something on the way.
    scraped = _moved(obs, 0.15 * math.cos(r.yaw), 0.15 * math.sin(r.yaw), math.radians(20.0))
    assert ACTIONS[expert.act(scraped)].code == "b"


def test_a_clean_forward_move_is_not_blocked(backend: MujocoBackend) -> None:
    obs = backend.reset(0, TaskKind.PICKUP)
    obs = _first_move(backend, expert := Expert(backend), obs)
    obs = backend.execute_action(ACTION_BY_CODE["m"].index, render=False).observation
    assert ACTIONS[expert.act(obs)].code != "b"


def test_expert_gets_round_a_wall_end_it_scrapes_along() -> None:
    """Easy home, seed 206: carrying the book out of the room, the path cuts a doorway's wall end; each move
    there turned the base and the expert tried the same again until the budget ran out."""
    sim = MujocoBackend(home_config=HomeGenConfig.easy(), depth=False)
    try:
        obs = sim.reset(206, TaskKind.FETCH)
        expert = Expert(sim)
        while not sim.status().done:
            obs = sim.execute_action(expert.act(obs), render=False).observation
        assert sim.status().success, sim.status().steps
    finally:
        sim.close()
