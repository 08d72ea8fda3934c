"""Motion primitives: each discrete action driven closed-loop on a kinematic unicycle and on joint states."""

from __future__ import annotations

import math

import pytest

from safevla_node.actions import ACTIONS, action_by_code
from safevla_node.errors import ConfigError
from safevla_node.safety.primitives import MotionPrimitive, PrimitiveConfig, PrimitivePhase, wrap_angle
from safevla_node.safety.types import RobotState

DT = 0.05
CONFIG = PrimitiveConfig()
JOINTS = {"joint_lift": 0.6, "wrist_extension": 0.1, "joint_wrist_yaw": 0.0, "gripper_aperture": 0.05}


def drive(primitive: MotionPrimitive, robot: RobotState, joints: dict[str, float] | None = None,
          max_time: float = 20.0) -> tuple[RobotState, dict[str, float], float, str, PrimitivePhase]:
    """Integrate the commanded twist (unicycle) and move joints 50% toward the targets per tick."""
    joints = dict(JOINTS if joints is None else joints)
    t = 0.0
    while t < max_time:
        step = primitive.step(t, robot, joints)
        if step.phase is not PrimitivePhase.RUNNING:
            return robot, joints, t, step.reason, step.phase
        v, w = step.twist.linear_x, step.twist.angular_z
        robot = RobotState(x=robot.x + v * math.cos(robot.yaw) * DT, y=robot.y + v * math.sin(robot.yaw) * DT,
                           yaw=wrap_angle(robot.yaw + w * DT))
        for name, target in primitive.targets.items():
            joints[name] += 0.5 * (target - joints[name])
        t += DT
    raise AssertionError("primitive never finished")


@pytest.mark.parametrize("code", ["m", "b"])
def test_move_primitive_travels_its_distance_along_the_start_heading(code):
    action = action_by_code(code)
    start = RobotState(x=1.0, y=-0.5, yaw=0.7)
    robot, _, t, reason, phase = drive(MotionPrimitive(action, start, JOINTS, CONFIG, 0.0, 0.5), start)
    assert phase is PrimitivePhase.DONE, reason
    travelled = (robot.x - start.x) * math.cos(start.yaw) + (robot.y - start.y) * math.sin(start.yaw)
    assert travelled == pytest.approx(action.forward_m, abs=CONFIG.position_tolerance)
    assert abs(wrap_angle(robot.yaw - start.yaw)) < 1e-6
    # Saturation: 0.2 m at <= 0.15 m/s cannot take less than 0.2 / 0.15 s.
    assert t >= 0.2 / CONFIG.max_linear_speed - DT


@pytest.mark.parametrize("code", ["r", "l", "ls", "rs"])
def test_rotate_primitive_turns_by_its_angle_within_tolerance(code):
    action = action_by_code(code)
    start = RobotState(yaw=3.0)  # crosses the +-pi wrap for the left turns
    robot, _, _, reason, phase = drive(MotionPrimitive(action, start, JOINTS, CONFIG, 0.0, 0.5), start)
    assert phase is PrimitivePhase.DONE, reason
    assert wrap_angle(robot.yaw - start.yaw - action.yaw_rad) == pytest.approx(0.0, abs=CONFIG.yaw_tolerance)


def test_base_commands_respect_the_speed_limits():
    primitive = MotionPrimitive(action_by_code("m"), RobotState(), JOINTS, CONFIG, 0.0, 0.5)
    step = primitive.step(0.0, RobotState(yaw=-0.5), JOINTS)
    assert abs(step.twist.linear_x) <= CONFIG.max_linear_speed
    assert abs(step.twist.angular_z) <= CONFIG.max_angular_speed
    assert step.twist.angular_z > 0  # steers back to the start heading


@pytest.mark.parametrize("code", ["zm", "zp", "yp", "ym", "wp", "wm", "yms", "zms", "zps", "yps"])
def test_arm_primitive_targets_are_relative_to_the_current_joint_states(code):
    action = action_by_code(code)
    primitive = MotionPrimitive(action, RobotState(), JOINTS, CONFIG, 0.0, 0.5)
    trajectory = primitive.arm_trajectory()
    assert trajectory is not None and len(trajectory.points) == 1
    ((joint, target),) = trajectory.final_targets().items()
    delta = {"joint_lift": action.lift_m, "wrist_extension": action.extension_m,
             "joint_wrist_yaw": action.wrist_yaw_rad}[joint]
    assert target == pytest.approx(JOINTS[joint] + delta)
    assert trajectory.points[0].time_from_start == CONFIG.arm_move_duration
    _, joints, _, reason, phase = drive(primitive, RobotState())
    assert phase is PrimitivePhase.DONE, reason
    assert joints[joint] == pytest.approx(target, abs=CONFIG.joint_tolerance)


def test_arm_targets_are_clamped_to_the_joint_limits():
    joints = dict(JOINTS, wrist_extension=0.5)
    primitive = MotionPrimitive(action_by_code("zp"), RobotState(), joints, CONFIG, 0.0, 0.5,
                                joint_limits={"wrist_extension": (0.0, 0.52)})
    assert primitive.targets == {"wrist_extension": 0.52}


@pytest.mark.parametrize(("code", "target"), [("p", CONFIG.gripper_closed), ("d", CONFIG.gripper_open)])
def test_gripper_actions_target_closed_or_open_aperture(code, target):
    primitive = MotionPrimitive(action_by_code(code), RobotState(), JOINTS, CONFIG, 0.0, 0.5)
    assert primitive.targets == {"gripper_aperture": target}


def test_gripper_blocked_by_a_grasped_object_finishes_after_settling():
    primitive = MotionPrimitive(action_by_code("p"), RobotState(), JOINTS, CONFIG, 0.0, 0.5)
    blocked = dict(JOINTS, gripper_aperture=0.03)  # fingers stopped on the object
    early = primitive.step(CONFIG.gripper_settle_time - 0.1, RobotState(), blocked)
    assert early.phase is PrimitivePhase.RUNNING
    step = primitive.step(CONFIG.gripper_settle_time, RobotState(), blocked)
    assert step.phase is PrimitivePhase.DONE and "settled" in step.reason


@pytest.mark.parametrize("code", ["end", "sub_done"])
def test_episode_actions_finish_at_once_without_motion(code):
    primitive = MotionPrimitive(action_by_code(code), RobotState(), JOINTS, CONFIG, 0.0, 0.5)
    step = primitive.step(0.0, RobotState(), JOINTS)
    assert step.phase is PrimitivePhase.DONE
    assert (step.twist.linear_x, step.twist.angular_z) == (0.0, 0.0)
    assert primitive.arm_trajectory() is None


def test_a_stuck_base_aborts_after_the_timeout():
    primitive = MotionPrimitive(action_by_code("m"), RobotState(), JOINTS, CONFIG, 10.0, 0.5)
    assert primitive.step(10.0 + CONFIG.timeout, RobotState(), JOINTS).phase is PrimitivePhase.RUNNING
    step = primitive.step(10.0 + CONFIG.timeout + 0.01, RobotState(), JOINTS)
    assert step.phase is PrimitivePhase.ABORTED
    assert "timeout" in step.reason and "m to go" in step.reason


def test_arm_action_without_its_joint_state_cannot_start():
    with pytest.raises(ValueError, match="joint_lift.*joint_states does not report"):
        MotionPrimitive(action_by_code("yp"), RobotState(), {}, CONFIG, 0.0, 0.5)


def test_every_action_has_a_primitive():
    for action in ACTIONS:
        primitive = MotionPrimitive(action, RobotState(), JOINTS, CONFIG, 0.0, 0.5)
        phase = primitive.step(0.0, RobotState(), JOINTS).phase
        assert phase in (PrimitivePhase.RUNNING, PrimitivePhase.DONE)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_linear_speed": 0.0}, r"max_linear_speed=0.0 is out of range"),
    ({"min_angular_speed": 1.0}, r"min_angular_speed=1.0 is out of range"),
    ({"timeout": float("nan")}, r"timeout must be a finite number"),
])
def test_primitive_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PrimitiveConfig(**kwargs)
