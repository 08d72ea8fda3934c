"""The refusal memory shared by the evaluation adapters and the policy node: what a STOP or a REPLACE at a
pose masks, when it is forgotten, and its properties over arbitrary poses and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safevla_node.actions import NUM_ACTIONS
from safevla_node.errors import ConfigError
from safevla_node.safety.refusals import POSE_FIELDS, PoseTolerance, RefusalMemory, robot_pose
from safevla_node.safety.types import RobotState

HERE = (1.0, 2.0, 0.3, 0.6, 0.1)


def refuse(memory: RefusalMemory, pose, action: int, executed: int | None = None) -> None:
    memory.mask(pose)
    memory.proposed(action)
    memory.executed(executed)


def test_a_stopped_action_is_masked_at_the_same_pose_and_nothing_else():
    memory = RefusalMemory()
    assert memory.mask(HERE) is None
    memory.proposed(4)
    memory.executed(None)
    allowed = memory.mask(HERE)
    assert allowed is not None and not allowed[4] and allowed.sum() == NUM_ACTIONS - 1
    assert memory.refused == (4,)


def test_a_replaced_action_is_refused_and_an_executed_one_is_not():
    memory = RefusalMemory()
    refuse(memory, HERE, 2, executed=5)
    refuse(memory, HERE, 3, executed=3)  # allowed (or limited): it ran
    assert memory.refused == (2,)


def test_a_discarded_proposal_teaches_nothing():
    memory = RefusalMemory()
    memory.mask(HERE)
    memory.proposed(1)
    memory.discard()
    memory.executed(None)  # a late answer after the discard is not about any proposal
    assert memory.mask(HERE) is None


def test_moving_the_base_or_a_joint_beyond_the_tolerance_forgets_the_refusals():
    for index, step in enumerate((0.02, 0.02, 0.02, 0.01, 0.01)):
        memory = RefusalMemory()
        refuse(memory, HERE, 0)
        moved = list(HERE)
        moved[index] += step
        assert memory.mask(moved) is None, POSE_FIELDS[index]


def test_sensor_noise_within_the_tolerance_keeps_the_refusals():
    memory = RefusalMemory()
    refuse(memory, HERE, 0)
    noisy = np.array(HERE) + np.array([0.005, -0.005, 0.005, 0.002, -0.002])
    allowed = memory.mask(noisy)
    assert allowed is not None and not allowed[0]


def test_the_heading_wraps_around():
    memory = RefusalMemory()
    refuse(memory, (0.0, 0.0, math.pi - 0.001, 0.6, 0.0), 0)
    allowed = memory.mask((0.0, 0.0, -math.pi + 0.001, 0.6, 0.0))
    assert allowed is not None and not allowed[0]


def test_a_caller_mask_is_kept_and_the_memory_starts_over_when_nothing_would_be_left():
    memory = RefusalMemory()
    refuse(memory, HERE, 0)
    only_zero = np.zeros(NUM_ACTIONS, dtype=bool)
    only_zero[0] = True
    allowed = memory.mask(HERE, only_zero)
    assert allowed is not None and allowed.tolist() == only_zero.tolist()
    assert memory.refused == ()
    two = only_zero.copy()
    two[1] = True
    refuse(memory, HERE, 0)
    assert memory.mask(HERE, two).tolist() == [i == 1 for i in range(NUM_ACTIONS)]


def test_clear_forgets_everything():
    memory = RefusalMemory()
    refuse(memory, HERE, 0)
    memory.clear()
    assert memory.mask(HERE) is None and memory.refused == ()


def test_robot_pose_reads_the_keyed_fields():
    robot = RobotState(x=1.0, y=-2.0, yaw=0.5, lift=0.7, arm_extension=0.2, wrist_yaw=1.0)
    assert robot_pose(robot).tolist() == [1.0, -2.0, 0.5, 0.7, 0.2]


@pytest.mark.parametrize("pose", [(0.0, 0.0, 0.0, 0.0), (0.0, 0.0, math.nan, 0.0, 0.0)])
def test_a_malformed_pose_is_rejected(pose):
    with pytest.raises(ValueError, match=r"must be 5 finite numbers"):
        RefusalMemory().mask(pose)


def test_a_mask_of_the_wrong_length_is_rejected():
    with pytest.raises(ValueError, match=r"one bool per action"):
        RefusalMemory().mask(HERE, [True, False])


def test_a_negative_tolerance_is_rejected():
    with pytest.raises(ConfigError, match=r"position_m"):
        PoseTolerance(position_m=-0.1)


poses = st.tuples(*(st.floats(-5.0, 5.0) for _ in range(5)))
actions = st.integers(0, NUM_ACTIONS - 1)
outcomes = st.one_of(st.none(), actions)


@settings(max_examples=200, deadline=None)
@given(history=st.lists(st.tuples(poses, actions, outcomes), max_size=12), pose=poses,
       caller=st.one_of(st.none(), st.lists(st.booleans(), min_size=NUM_ACTIONS, max_size=NUM_ACTIONS)))
def test_the_mask_never_allows_what_the_caller_forbade_and_always_leaves_a_choice(history, pose, caller):
    memory = RefusalMemory()
    for where, action, executed in history:
        refuse(memory, where, action, executed)
    allowed = memory.mask(pose, caller)
    if allowed is None:
        assert caller is None
        return
    if caller is not None:
        assert not (allowed & ~np.array(caller)).any()
        assert allowed.any() or not any(caller)
    else:
        assert allowed.any()


@settings(max_examples=200, deadline=None)
@given(history=st.lists(st.tuples(actions, outcomes), min_size=1, max_size=12))
def test_at_one_pose_exactly_the_actions_that_did_not_run_as_proposed_are_masked(history):
    memory = RefusalMemory()
    refused: set[int] = set()
    for action, executed in history:
        if len(refused) == NUM_ACTIONS:  # nothing would be left: the memory starts over
            refused = set()
        refuse(memory, HERE, action, executed)
        if executed != action:
            refused.add(action)
    if len(refused) == NUM_ACTIONS:
        refused = set()
    allowed = memory.mask(HERE)
    masked = set() if allowed is None else set(np.flatnonzero(~allowed).tolist())
    assert masked == refused
