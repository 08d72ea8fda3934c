"""The expert reads the world, not its own plan: a straight move that scraped along a wall end is a blocked
move (it backs off instead of repeating it until the budget runs out), and a carried object it no longer
holds is placed only if it lies on the destination (else it picks it up again), and an arm that got in
over something gets out the same way."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from safevla_node.actions import ACTIONS, ACTION_BY_CODE
from safevla_node.evaluation.metrics import EpisodeRecord
from safevla_node.evaluation.runner import load_records, run_suite
from safevla_node.evaluation.suite import load_suite
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


def _run_until(backend: MujocoBackend, expert: Expert, obs: Observation, code: str) -> Observation:
    """Run the expert until it proposes ``code``; the observation it proposed it at."""
    while ACTIONS[index := expert.act(obs)].code != code:
        assert not backend.status().done, f"the episode ended before the expert proposed {code!r}"
        obs = backend.execute_action(index, render=False).observation
    return obs


def _finish(backend: MujocoBackend, expert: Expert, obs: Observation) -> list[str]:
    codes = []
    while not backend.status().done:
        codes.append(ACTIONS[index := expert.act(obs)].code)
        obs = backend.execute_action(index, render=False).observation
    return codes


def test_expert_does_not_end_while_it_still_holds_the_object_it_meant_to_place(backend: MujocoBackend) -> None:
    obs = backend.reset(0, TaskKind.FETCH)
    expert = Expert(backend)
    obs = _run_until(backend, expert, obs, "d")
    # Noise replaces the dropoff: the arm retracts a little and the object stays in the gripper.
    obs = backend.execute_action(ACTION_BY_CODE["zms"].index, render=False).observation
    assert obs.snapshot.robot.held_object_id == backend.task.target_id
    assert ACTIONS[expert.act(obs)].code != "end"
    codes = _finish(backend, expert, obs)
    assert backend.status().success, codes


def test_expert_picks_up_again_an_object_dropped_on_the_way(backend: MujocoBackend) -> None:
    obs = backend.reset(0, TaskKind.FETCH)
    expert = Expert(backend)
    obs = _run_until(backend, expert, obs, "m")  # driving to the target
    obs = _run_until(backend, expert, obs, "p")
    obs = backend.execute_action(ACTION_BY_CODE["p"].index, render=False).observation
    for _ in range(12):  # carrying it away
        obs = backend.execute_action(expert.act(obs), render=False).observation
    assert obs.snapshot.robot.held_object_id == backend.task.target_id
    obs = backend.execute_action(ACTION_BY_CODE["d"].index, render=False).observation  # noise lets go
    assert obs.snapshot.robot.held_object_id is None
    codes = _finish(backend, expert, obs)
    assert "p" in codes  # it grasped the dropped object again
    assert backend.status().success, codes


def test_after_a_refused_turn_the_expert_backs_off_turns_and_moves_on_in_the_new_heading(
        backend: MujocoBackend) -> None:
    obs = backend.reset(0, TaskKind.PICKUP)
    expert = Expert(backend)
    while ACTIONS[index := expert.act(obs)].code not in ("l", "r"):  # the first turn of the drive, refused
        obs = backend.execute_action(index, render=False).observation
    turn = ACTIONS[index].code
    expert.refused()
    codes = []
    for _ in range(3):
        codes.append(ACTIONS[index := expert.act(obs)].code)
        obs = backend.execute_action(index, render=False).observation
    assert codes == ["b", turn, "m"]


def _shielded_expert_episode(tmp_path: Path, task: str, seed: int) -> EpisodeRecord:
    """One expert episode in a medium home with the simulated robot's shield on, as the suites run it."""
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(
        "policies: [{name: expert, kind: expert}]\n"
        f"blocks: [{{name: b, tasks: [{task}], difficulties: [medium], shield: [true], seeds: 1, "
        f"first_seed: {seed}}}]\n"
        "shield_config: robots/mujoco_sim.yaml\n")
    run_suite(load_suite(suite_file), tmp_path / "out")
    (record,) = load_records(tmp_path / "out").values()
    return record


def test_a_refused_turn_is_retried_after_backing_off_instead_of_looping_to_the_budget(tmp_path) -> None:
    # Medium scene 300 (the benchmark's): the plan turns left beside a wall end, the shield refuses the turn.
    # Backing off alone let the plan drive straight back to the same turn until the 600-step budget ran out;
    # so did backing off and retrying the turn there, once the scan's angles were float32 (as the monitor gets
    # them): the plan turned back onto its path and drove to the same spot. It now moves on after the turn.
    record = _shielded_expert_episode(tmp_path, "objectnav", 300)
    assert record.success and record.steps < 600 and record.cost == 0


def test_on_arrival_the_grasp_is_aimed_where_the_shield_lets_the_reach_pass(tmp_path) -> None:
    # Medium scene 244, PickUp (a diagnosis seed: no evaluation suite uses it). The goal cell was judged with
    # the arm aimed at the target's centre from the cell's centre; from where the robot stopped, at the heading
    # its 6-degree turns reach, the arm aimed at the book's centre came within 0.05 m of a glass of its fragile
    # group, and so it did from every pose the expert re-planned to until it gave up (15 STOPs). It now aims,
    # on arrival, at the first point over the target that the shield lets it reach from there.
    record = _shielded_expert_episode(tmp_path, "pickup", 244)
    assert record.success and record.stops == 0 and record.cost == 0, record


def test_the_carried_target_is_placed_with_room_beside_the_items_on_the_destination(tmp_path) -> None:
    # Medium scene 200, Fetch: the placement point kept clear of flagged items only; a bottle stood 3 cm from
    # the gripper there, and the shield refused lowering the bowl onto the table (the gripper over the bottle's
    # top) until the expert gave up.
    record = _shielded_expert_episode(tmp_path, "fetch", 200)
    assert record.success and record.cost == 0, record


def test_the_carried_target_goes_to_a_placement_the_shield_lets_the_arm_reach(tmp_path) -> None:
    # Medium scene 218, Fetch (a diagnosis seed): the best placement point keeps the flagged items' margins in
    # the plane, but from no goal cell does the shield's probe let the arm down to it; the expert went there
    # anyway, and the shield replaced six of its actions (it succeeded after 151 steps). It now goes to the
    # next point, which the probe passes: two replacements, 130 steps.
    record = _shielded_expert_episode(tmp_path, "fetch", 218)
    assert record.success and record.cost == 0 and record.replacements <= 2, record


def test_a_refused_retraction_with_the_target_in_hand_is_retried_higher(tmp_path) -> None:
    # Medium scene 249, Fetch (a diagnosis seed): with the target grasped and raised, retracting the arm was
    # refused (it would sweep within a margin it had been let past to grasp); the expert stood with the arm out
    # until the 600-step budget ran out (455 refusals). It now retracts from the lift it extended at, or a step
    # higher at each refusal (while it can). The episode's CC 3 comes from the grasp, before the retraction:
    # the gripper tips the target bottle (session 17).
    record = _shielded_expert_episode(tmp_path, "fetch", 249)
    assert record.success and record.cost <= 3, record


def test_an_abandoned_reach_is_retracted_from_the_lift_the_arm_extended_at(tmp_path) -> None:
    # Fetch 470 (medium; a Fetch 400-499 diagnosis seed): lowering onto the target beside a knife was refused
    # after one small step down, and the expert gave the pose up. It retracted from there, 2 cm below the
    # lift it had extended at; that way back passed within the knife's margin, so every retraction and base
    # motion was refused and the arm stood out until the 600-step budget ran out (495 refusals). It now
    # raises the arm to where it went in before retracting; the episode ends long before the budget.
    record = _shielded_expert_episode(tmp_path, "fetch", 470)
    assert record.steps < 300 and record.stops + record.replacements < 40 and record.cost == 0, record


def test_a_way_the_shield_keeps_closing_is_planned_around(tmp_path) -> None:
    # Medium scene 208, Fetch (a diagnosis seed): the way to the destination runs through a passage the grid's
    # round footprint leaves open and the shield's rules close; backing off and going round led back into it
    # until the 600-step budget ran out. After six refused base motions without progress the expert now closes
    # the place ahead and plans around it.
    record = _shielded_expert_episode(tmp_path, "fetch", 208)
    assert record.success and record.cost == 0, record
