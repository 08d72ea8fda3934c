"""The MuJoCo backend: determinism, command validation, rendering, sensors, grasping, episodes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safevla_node.actions import ACTION_BY_CODE
from safevla_node.config import load_yaml
from safevla_node.errors import SimError
from safevla_node.paths import config_path
from sim_bridge.homegen import HomeGenConfig
from sim_bridge.interface import JOINT_NAMES, Observation, TaskKind, TaskSpec
from sim_bridge.mujoco import MujocoBackend, Perturbations
from sim_bridge.mujoco import stretch_constants as C
from tests.sim import scenes

_ACTIONS = [ACTION_BY_CODE[c].index for c in ("m", "l", "m", "zp", "yp", "rs", "b")]


@pytest.fixture(scope="module")
def backend() -> Iterator[MujocoBackend]:
    sim = MujocoBackend(home_config=HomeGenConfig.hard())
    yield sim
    sim.close()


def _trace(backend: MujocoBackend, seed: int) -> list[Observation]:
    out = [backend.reset(seed, TaskKind.PICKUP)]
    out += [backend.execute_action(a).observation for a in _ACTIONS]
    return out


def test_same_seed_and_actions_give_the_same_observations(backend: MujocoBackend) -> None:
    first, second = _trace(backend, 7), _trace(backend, 7)
    for a, b in zip(first, second):
        assert a.snapshot.robot == b.snapshot.robot
        assert {k: o.position for k, o in a.snapshot.objects.items()} == {
            k: o.position for k, o in b.snapshot.objects.items()
        }
        assert np.array_equal(a.nav_camera.rgb, b.nav_camera.rgb)
        assert np.array_equal(a.manip_camera.rgb, b.manip_camera.rgb)
        assert np.array_equal(a.scan.ranges, b.scan.ranges)


def test_different_seeds_give_different_homes(backend: MujocoBackend) -> None:
    a = backend.reset(1, TaskKind.OBJECT_NAV).snapshot
    b = backend.reset(2, TaskKind.OBJECT_NAV).snapshot
    assert set(a.objects) != set(b.objects) or a.robot != b.robot


def test_rendered_frames_have_the_camera_shape_and_content(backend: MujocoBackend) -> None:
    obs = backend.reset(3, TaskKind.OBJECT_NAV)
    width, height = C.DEFAULT_CAMERA_SIZE
    for frame in (obs.nav_camera, obs.manip_camera):
        assert frame.rgb.shape == (height, width, 3) and frame.rgb.dtype == np.uint8
        assert frame.rgb.std() > 5.0  # not a constant image
        assert frame.depth.shape == (height, width) and np.isfinite(frame.depth).all()
        assert 0.02 < float(frame.depth.min()) < float(frame.depth.max()) < 30.0
        assert frame.fy == pytest.approx((height / 2) / math.tan(math.radians(C.CAMERA_FOVY_DEG / 2)))
        assert frame.cx == pytest.approx((width - 1) / 2)
    x, y, z, _, pitch, _ = obs.nav_camera.pose_in_base
    assert z == pytest.approx(C.HEAD_Z, abs=0.05)
    assert pitch == pytest.approx(-C.STOW["joint_head_tilt"], abs=0.01)  # REP-103: positive pitch looks down


def test_the_sim_profile_gives_the_monitor_the_head_camera_s_real_pose(backend: MujocoBackend) -> None:
    # the monitor takes the depth camera's pose from its parameters (no tf): in the `sim` profile they must
    # be the rendered camera's, at the head pose the robot keeps, or every depth point lands elsewhere
    monitor = load_yaml(config_path("robots/mujoco_sim.yaml"))["safety_monitor"]["ros__parameters"]
    obs = backend.reset(3, TaskKind.OBJECT_NAV)
    assert monitor["depth_camera_pose_in_base"] == pytest.approx(obs.nav_camera.pose_in_base, abs=1e-3)
    head = dict(zip(monitor["depth_camera_joints"], monitor["depth_camera_joint_positions"]))
    assert head == pytest.approx({name: obs.joints[name] for name in ("joint_head_pan", "joint_head_tilt")})
    moved = backend.execute_action(ACTION_BY_CODE["m"].index).observation  # no action moves the head
    assert moved.nav_camera.pose_in_base == pytest.approx(obs.nav_camera.pose_in_base, abs=1e-3)


def test_observe_without_render_skips_cameras(backend: MujocoBackend) -> None:
    backend.reset(3, TaskKind.OBJECT_NAV)
    obs = backend.observe(render=False)
    assert obs.nav_camera is None and obs.manip_camera is None


def test_nan_twist_is_rejected_before_physics(backend: MujocoBackend) -> None:
    before = backend.reset(0, TaskKind.OBJECT_NAV).snapshot.robot
    with pytest.raises(ValueError, match=r"linear_x=nan is not finite"):
        backend.set_base_twist(float("nan"), 0.0)
    with pytest.raises(ValueError, match=r"angular_z=inf is not finite"):
        backend.set_base_twist(0.0, float("inf"))
    backend.advance(0.5)
    after = backend.observe(render=False).snapshot.robot
    assert math.hypot(after.x - before.x, after.y - before.y) < 1e-3
    assert np.isfinite(backend.physics.data.qpos).all()


def test_latched_twist_moves_the_base_forward(backend: MujocoBackend) -> None:
    obs = backend.reset(0, TaskKind.OBJECT_NAV)
    start = obs.snapshot.robot
    backend.set_base_twist(0.2, 0.0)
    backend.advance(0.5)
    now = backend.observe(render=False)
    robot = now.snapshot.robot
    travelled = (robot.x - start.x) * math.cos(start.yaw) + (robot.y - start.y) * math.sin(start.yaw)
    assert travelled == pytest.approx(0.1, abs=0.02)
    assert now.base_velocity[0] == pytest.approx(0.2, abs=0.02)
    backend.set_base_twist(0.0, 0.0)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"joint_lift": 1.5}, r"joint_lift target 1.5 is outside its range \[0, 1.1\]"),
        ({"wrist_extension": -0.1}, r"wrist_extension target -0.1 is outside its range \[0, 0.52\]"),
        ({"joint_lift": float("nan")}, r"joint_lift target nan is outside its range"),
        ({"elbow": 0.1}, r"unknown joint 'elbow'; valid joints: \['joint_lift'"),
    ],
)
def test_bad_joint_targets_are_rejected_naming_the_range(
    backend: MujocoBackend, targets: dict[str, float], message: str
) -> None:
    backend.reset(0, TaskKind.OBJECT_NAV)
    with pytest.raises(ValueError, match=message):
        backend.set_joint_targets(targets)


def test_joint_targets_are_reached(backend: MujocoBackend) -> None:
    backend.load(scenes.empty_room(), TaskSpec(TaskKind.OBJECT_NAV, "find a mug", "Mug", None))
    backend.set_joint_targets({"joint_lift": 0.5, "wrist_extension": 0.3, "joint_head_tilt": -0.8})
    backend.advance(1.5)
    joints = backend.observe(render=False).joints
    assert set(joints) == set(JOINT_NAMES)
    assert joints["joint_lift"] == pytest.approx(0.5, abs=0.005)
    assert joints["wrist_extension"] == pytest.approx(0.3, abs=0.005)
    assert joints["joint_head_tilt"] == pytest.approx(-0.8, abs=0.01)


def test_lidar_sees_the_walls_around_the_robot(backend: MujocoBackend) -> None:
    obs = backend.reset(0, TaskKind.OBJECT_NAV)
    scan = obs.scan
    assert len(scan.ranges) == 360 and scan.angle_increment == pytest.approx(2 * math.pi / 360)
    assert np.isfinite(scan.ranges).all()  # a closed home: every beam hits something
    assert float(scan.ranges.min()) > C.FOOTPRINT_RADIUS - 0.1 and float(scan.ranges.max()) < 10.0


def test_lidar_reports_its_beams_as_a_laserscan_message_carries_them(backend: MujocoBackend) -> None:
    scan = backend.reset(0, TaskKind.OBJECT_NAV).scan
    fields = (scan.angle_min, scan.angle_increment, scan.range_min, scan.range_max)
    assert all(float(np.float32(value)) == value for value in fields)
    assert scan.ranges.dtype == np.float32


def test_reachable_points_lie_within_a_metre_on_the_grid(backend: MujocoBackend) -> None:
    snap = backend.reset(0, TaskKind.OBJECT_NAV).snapshot
    pts = snap.reachable_xy
    assert len(pts) > 40
    assert (np.hypot(pts[:, 0] - snap.robot.x, pts[:, 1] - snap.robot.y) <= 1.0).all()
    assert np.allclose(np.round(pts / 0.15) * 0.15, pts)


def test_pickup_far_from_everything_grasps_nothing(backend: MujocoBackend) -> None:
    backend.reset(0, TaskKind.OBJECT_NAV)
    assert backend.pickup() is False and backend.release() is False


def test_invalid_action_index_is_rejected(backend: MujocoBackend) -> None:
    backend.reset(0, TaskKind.OBJECT_NAV)
    with pytest.raises(ValueError, match=r"action_index=20 must be in \[0, 19\]"):
        backend.execute_action(20)


def test_acting_after_end_is_refused(backend: MujocoBackend) -> None:
    backend.reset(0, TaskKind.OBJECT_NAV)
    result = backend.execute_action(ACTION_BY_CODE["end"].index, render=False)
    assert result.status.done and result.cost.total == 0
    with pytest.raises(SimError, match="episode is over after 1 steps"):
        backend.execute_action(0)


@pytest.mark.parametrize("kind", list(TaskKind))
def test_infeasible_task_never_succeeds(backend: MujocoBackend, kind: TaskKind) -> None:
    backend.reset(5, kind, infeasible=True)
    assert not backend.task.feasible
    for code in ("m", "l", "p", "zp", "end"):
        result = backend.execute_action(ACTION_BY_CODE[code].index, render=False)
    assert result.status.done and not result.status.success
    assert result.status.expert_path_length is None


def test_step_budget_ends_the_episode(backend: MujocoBackend) -> None:
    backend.reset(0, TaskKind.OBJECT_NAV)
    backend.load(backend.scene, replace(backend.task, max_steps=3))
    for _ in range(3):
        status = backend.execute_action(ACTION_BY_CODE["ls"].index, render=False).status
    assert status.done and status.steps == 3 and not status.success


def test_path_length_accumulates_base_motion(backend: MujocoBackend) -> None:
    backend.reset(0, TaskKind.OBJECT_NAV)
    for code in ("l", "l", "l"):
        backend.execute_action(ACTION_BY_CODE[code].index, render=False)
    assert backend.status().path_length < 0.01
    backend.execute_action(ACTION_BY_CODE["m"].index, render=False)
    assert backend.status().path_length == pytest.approx(0.2, abs=0.02)


def test_camera_size_out_of_bounds_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"camera_size=\(4000, 224\)"):
        MujocoBackend(camera_size=(4000, 224))


class TestPerturbations:
    """OOD switches change what the cameras see, reproducibly per seed."""

    @staticmethod
    def _frame(perturb: Perturbations, seed: int = 2) -> np.ndarray:
        sim = MujocoBackend(perturbations=perturb, depth=False, camera_size=(96, 64))
        try:
            return sim.reset(seed, TaskKind.OBJECT_NAV).nav_camera.rgb
        finally:
            sim.close()

    def test_each_switch_changes_the_image_and_repeats_per_seed(self) -> None:
        plain = self._frame(Perturbations())
        for perturb in (
            Perturbations(colour=True),
            Perturbations(material=True),
            Perturbations(lighting=True),
            Perturbations(camera_noise=8.0),
        ):
            image = self._frame(perturb)
            assert not np.array_equal(image, plain), perturb
            assert np.array_equal(image, self._frame(perturb)), perturb

    def test_camera_noise_out_of_range_is_rejected(self) -> None:
        with pytest.raises(ValueError, match=r"camera_noise=100.0 must be in \[0, 64\]"):
            Perturbations(camera_noise=100.0)


@pytest.fixture(scope="module")
def empty_room(backend: MujocoBackend) -> MujocoBackend:
    """The module's backend with the empty room loaded once (Hypothesis runs the test body many times)."""
    backend.load(scenes.empty_room(), TaskSpec(TaskKind.OBJECT_NAV, "find a mug", "Mug", None))
    return backend


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(C.JOINT_LIMITS)), value=st.floats(allow_nan=True, allow_infinity=True))
def test_joint_targets_are_accepted_exactly_inside_their_range(
    empty_room: MujocoBackend, name: str, value: float
) -> None:
    lo, hi = C.JOINT_LIMITS[name]
    if math.isfinite(value) and lo <= value <= hi:
        empty_room.set_joint_targets({name: value})
    else:
        with pytest.raises(ValueError, match=f"{name} target .* is outside its range"):
            empty_room.set_joint_targets({name: value})
