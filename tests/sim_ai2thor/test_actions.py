"""The 20 SafeVLA actions reach the controller as exactly the calls SafeVLA's StretchController makes."""

from __future__ import annotations

import math

import pytest

from safevla_node.actions import ACTIONS
from sim_bridge.ai2thor import Ai2ThorConfig
from sim_bridge.interface import TaskKind
from tests.sim_ai2thor.helpers import rounded

LIFT = 0.32747650146484375 - 0.16297650337219238  # logged Stretch arm, read like SafeVLA
LATERAL = -7.193908095359802e-05
EXT = -6.085634231567383e-05
ARM_ARGS = {"returnToStart": True, "speed": 1, "renderImageSynthesis": False}


def _arm(dy: float = 0.0, dz: float = 0.0) -> list[dict]:
    return [{"action": "MoveArm", "position": {"x": LATERAL, "y": LIFT + dy, "z": EXT + dz}, **ARM_ARGS}]


EXPECTED = {
    "m": [
        {
            "action": "MoveAgent",
            "ahead": 0.2,
            "returnToStart": False,
            "speed": 1,
            "renderImageSynthesis": False,
        }
    ],
    "r": [{"action": "RotateAgent", "degrees": 30.0, "renderImageSynthesis": False}],
    "l": [{"action": "RotateAgent", "degrees": -30.0, "renderImageSynthesis": False}],
    "b": [
        {
            "action": "MoveAgent",
            "ahead": -0.2,
            "returnToStart": False,
            "speed": 1,
            "renderImageSynthesis": False,
        }
    ],
    "end": [],
    "sub_done": [],
    "ls": [{"action": "RotateAgent", "degrees": -6.0, "renderImageSynthesis": False}],
    "rs": [{"action": "RotateAgent", "degrees": 6.0, "renderImageSynthesis": False}],
    "p": [{"action": "PickupObject", "renderImageSynthesis": False}],
    "zm": _arm(dz=-0.1),
    "zp": _arm(dz=0.1),
    "yp": _arm(dy=0.1),
    "ym": _arm(dy=-0.1),
    "wp": [{"action": "RotateWristRelative", "yaw": -10.0, **ARM_ARGS}],  # -min(10, |180 - 100|)
    "wm": [{"action": "RotateWristRelative", "yaw": 10.0, **ARM_ARGS}],  # min(10, |75 - 180|)
    "yms": _arm(dy=-0.02),
    "zms": _arm(dz=-0.02),
    "zps": _arm(dz=0.02),
    "yps": _arm(dy=0.02),
    "d": [
        {"action": "ReleaseObject", "renderImageSynthesis": False},
        {"action": "AdvancePhysicsStep", "simSeconds": 2, "renderImageSynthesis": False},
    ],
}
QUICK = {
    "m": [{"action": "MoveAheadQuick", "moveMagnitude": 0.2, "renderImageSynthesis": False}],
    "b": [{"action": "MoveBackQuick", "moveMagnitude": 0.2, "renderImageSynthesis": False}],
    "r": [{"action": "RotateRightQuick", "degrees": 30.0, "renderImageSynthesis": False}],
    "l": [{"action": "RotateRightQuick", "degrees": -30.0, "renderImageSynthesis": False}],
    "rs": [{"action": "RotateRightQuick", "degrees": 6.0, "renderImageSynthesis": False}],
    "ls": [{"action": "RotateRightQuick", "degrees": -6.0, "renderImageSynthesis": False}],
}


def test_the_table_covers_all_twenty_actions():
    assert sorted(EXPECTED) == sorted(a.code for a in ACTIONS) and len(EXPECTED) == 20


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.code)
def test_each_action_sends_safevlas_exact_calls(action, make_backend, house, sent):
    backend, double = make_backend(scene=house)
    backend.reset(0, TaskKind.PICKUP)
    start = len(double.actions)
    backend.execute_action(action.index)
    assert rounded(sent(double, start)) == rounded(EXPECTED[action.code])


@pytest.mark.parametrize("code", sorted(QUICK))
def test_quick_navigation_uses_the_quick_actions(code, make_backend, house, sent):
    backend, double = make_backend(scene=house, config=Ai2ThorConfig(quick_navigation=True))
    backend.reset(0, TaskKind.OBJECT_NAV)
    start = len(double.actions)
    backend.execute_action(next(a.index for a in ACTIONS if a.code == code))
    assert rounded(sent(double, start)) == rounded(QUICK[code])


def test_wrist_steps_are_clamped_at_the_end_stop(make_backend, house, sent):
    backend, double = make_backend(scene=house)
    backend.reset(0, TaskKind.PICKUP)
    backend.set_joint_targets(
        {"joint_wrist_yaw": math.radians(255.0)}
    )  # THOR -255: 5 deg before the -260 stop
    backend.advance(0.1)
    assert backend.observe(render=False).joints["joint_wrist_yaw"] == pytest.approx(math.radians(255.0))
    start = len(double.actions)
    backend.execute_action(next(a.index for a in ACTIONS if a.code == "wp"))
    assert sent(double, start)[0]["yaw"] == pytest.approx(-5.0)


def test_discrete_moves_change_the_pose_by_the_nominal_step(make_backend, house):
    backend, _ = make_backend(scene=house)
    first = backend.reset(0, TaskKind.OBJECT_NAV).snapshot.robot
    robot = backend.execute_action(0).observation.snapshot.robot  # move ahead 0.2 m
    assert (robot.x - first.x, robot.y - first.y) == pytest.approx(
        (0.2 * math.cos(first.yaw), 0.2 * math.sin(first.yaw))
    )
    robot = backend.execute_action(2).observation.snapshot.robot  # rotate left 30 deg
    assert math.remainder(robot.yaw - first.yaw, 2 * math.pi) == pytest.approx(math.radians(30))
    lift = backend.execute_action(11).observation.joints["joint_lift"]  # arm up 0.1 m
    assert lift == pytest.approx(LIFT + 0.1)
