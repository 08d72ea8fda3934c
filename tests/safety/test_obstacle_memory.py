"""Obstacle memory: scans and depth images in, remembered obstacle cells in odom out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safevla_node.errors import ConfigError, MessageError
from safevla_node.safety.obstacle_memory import ObstacleMemory, ObstacleMemoryConfig
from safevla_node.safety.types import RobotState

RES = ObstacleMemoryConfig().resolution_m
#: A 60-degree scan of 61 beams; beam 30 looks straight ahead.
FRONT = dict(angle_min=-math.pi / 6, angle_increment=math.pi / 180, range_min=0.05, range_max=5.0)


def beams(hits: dict[int, float], n: int = 61, default: float = math.inf) -> np.ndarray:
    """A scan with ``default`` on every beam except those given."""
    ranges = np.full(n, default)
    for i, r in hits.items():
        ranges[i] = r
    return ranges


def near(xy: np.ndarray, point: tuple[float, float], tol: float = RES) -> np.ndarray:
    return np.hypot(xy[:, 0] - point[0], xy[:, 1] - point[1]) <= tol


def test_a_scan_return_lands_in_odom_at_the_robot_and_sensor_pose() -> None:
    memory = ObstacleMemory()
    robot = RobotState(x=1.0, y=2.0, yaw=math.pi / 2)
    memory.add_scan(0.0, robot, beams({30: 1.0}), **FRONT, sensor_xy_yaw=(0.1, 0.0, 0.0))  # beam 30 = 0 rad
    xy, visible = memory.snapshot(0.0)
    assert xy.shape == (1, 2) and visible.tolist() == [True]
    assert near(xy, (1.0, 3.1)).all()


def test_scan_returns_outside_the_valid_range_or_nan_store_nothing() -> None:
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({0: 0.01, 1: math.nan, 2: 7.0}), **FRONT)
    assert len(memory) == 0


def test_a_remembered_point_is_not_visible_after_the_robot_turns_away() -> None:
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({30: 1.0}), **FRONT)
    memory.add_scan(0.5, RobotState(yaw=math.pi), beams({}), **FRONT)  # looking the other way, nothing seen
    xy, visible = memory.snapshot(0.5)
    assert near(xy, (1.0, 0.0)).any() and visible.tolist() == [False]


def test_a_scan_ray_through_a_remembered_cell_clears_it() -> None:
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({30: 1.0}), **FRONT)
    memory.add_scan(0.1, RobotState(), beams({30: 3.0}), **FRONT)  # the obstacle moved away
    xy, visible = memory.snapshot(0.1)
    assert not near(xy, (1.0, 0.0)).any() and near(xy, (3.0, 0.0)).any() and visible.all()


def test_a_beam_with_no_return_clears_up_to_range_max() -> None:
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({30: 1.0}), **FRONT)
    memory.add_scan(0.1, RobotState(), beams({}), **FRONT)
    assert len(memory) == 0


def test_a_cell_hidden_behind_a_nearer_return_is_kept_but_not_visible() -> None:
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({30: 2.0}), **FRONT)
    # someone steps in front, blocking every beam that crosses the remembered cell
    memory.add_scan(0.1, RobotState(), beams({i: 1.0 for i in range(27, 34)}), **FRONT)
    xy, visible = memory.snapshot(0.1)
    assert visible[near(xy, (2.0, 0.0))].tolist() == [False]
    assert visible[near(xy, (1.0, 0.0))].all()


def test_a_full_circle_scan_clears_across_the_wrap_around() -> None:
    full = dict(angle_min=-math.pi, angle_increment=2 * math.pi / 360, range_min=0.05, range_max=5.0)
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({0: 1.0}, n=360), **full)  # straight behind
    assert near(memory.snapshot(0.0)[0], (-1.0, 0.0)).any()
    memory.add_scan(0.1, RobotState(), beams({}, n=360), **full)
    assert len(memory) == 0


def test_remembered_cells_decay_after_decay_s() -> None:
    memory = ObstacleMemory(ObstacleMemoryConfig(decay_s=2.0))
    memory.add_scan(0.0, RobotState(), beams({30: 1.0}), **FRONT)
    assert len(memory.snapshot(1.9)[0]) == 1
    assert len(memory.snapshot(2.1)[0]) == 0
    memory.add_scan(2.5, RobotState(yaw=math.pi), beams({}), **FRONT)  # an update also forgets
    assert len(memory) == 0


def test_cells_outside_the_rolling_window_are_dropped() -> None:
    memory = ObstacleMemory(ObstacleMemoryConfig(radius_m=2.0))
    memory.add_scan(0.0, RobotState(), beams({30: 1.0}), **FRONT)
    memory.add_scan(0.1, RobotState(x=-1.5, yaw=math.pi), beams({}), **FRONT)
    assert len(memory) == 0


def test_clear_forgets_everything() -> None:
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({30: 1.0}), **FRONT)
    memory.clear()
    xy, visible = memory.snapshot(0.0)
    assert xy.shape == (0, 2) and visible.shape == (0,)


def test_negative_cells_round_trip_through_the_packed_keys() -> None:
    memory = ObstacleMemory()
    robot = RobotState(x=-2.33, y=-1.07, yaw=-math.pi / 2)
    memory.add_scan(0.0, robot, beams({30: 1.0}), **FRONT)
    assert near(memory.snapshot(0.0)[0], (-2.33, -2.07)).all()


# --- depth ------------------------------------------------------------------------------------------------

FX = FY = 100.0
CX, CY = 32.0, 24.0


def render_depth(cam: tuple[float, float, float, float, float, float], wall_x: float) -> np.ndarray:
    """Depth (64x48) of a vertical wall at x = wall_x (base_link) over a floor at z = 0, seen by ``cam``."""
    x, y, z, roll, pitch, yaw = cam
    assert roll == 0.0 and yaw == 0.0
    v = np.mgrid[0:48, 0:64][0].astype(float)
    # body-frame ray (1, -(u - cx)/fx, -(v - cy)/fy) pitched down by ``pitch``; its sideways part drops out
    b = -(v - CY) / FY
    dx = math.cos(pitch) * 1.0 + math.sin(pitch) * b
    dz = -math.sin(pitch) * 1.0 + math.cos(pitch) * b
    t_wall = np.where(dx > 0, (wall_x - x) / np.where(dx > 0, dx, 1.0), np.inf)
    t_floor = np.where(dz < 0, -z / np.where(dz < 0, dz, -1.0), np.inf)
    return np.minimum(t_wall, t_floor)  # optical depth = the ray parameter, the ray's forward part being 1


def test_depth_pixel_back_projects_through_a_tilted_camera() -> None:
    memory = ObstacleMemory(ObstacleMemoryConfig(depth_stride=1))
    depth = np.zeros((48, 64))
    depth[int(CY), int(CX)] = 1.0  # the optical axis, pitched 45 degrees down from 1 m up
    memory.add_depth(0.0, RobotState(), depth, FX, FY, CX, CY, (0.0, 0.0, 1.0, 0.0, math.pi / 4, 0.0))
    xy, visible = memory.snapshot(0.0)
    assert near(xy, (math.sqrt(0.5), 0.0)).all() and visible.tolist() == [True]


def test_depth_keeps_the_wall_drops_the_floor_and_lands_in_odom() -> None:
    cam = (0.1, 0.0, 1.2, 0.0, 0.5, 0.0)
    depth = render_depth(cam, wall_x=1.5)
    memory = ObstacleMemory(ObstacleMemoryConfig(depth_stride=2))
    robot = RobotState(x=2.0, y=-1.0, yaw=math.pi / 2)  # base x points along odom +y
    memory.add_depth(0.0, robot, depth, FX, FY, CX, CY, cam)
    xy, _ = memory.snapshot(0.0)
    assert len(xy) > 5
    np.testing.assert_allclose(xy[:, 1], -1.0 + 1.5 + RES / 2, atol=RES)  # only the wall, no floor cells
    assert np.ptp(xy[:, 0]) > 0.2  # the wall spans the image width


def test_depth_does_not_clear_what_the_scan_remembers() -> None:
    memory = ObstacleMemory()
    memory.add_scan(0.0, RobotState(), beams({30: 0.5}), **FRONT)
    memory.add_depth(0.1, RobotState(), render_depth((0.0, 0.0, 1.2, 0.0, 0.5, 0.0), 3.0), FX, FY, CX, CY,
                     (0.0, 0.0, 1.2, 0.0, 0.5, 0.0))
    xy, visible = memory.snapshot(0.1)
    assert near(xy, (0.5, 0.0)).any()
    # still visible: the scan's latest update saw it, whatever the depth camera saw since
    assert visible[near(xy, (0.5, 0.0))].all()


# --- validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(angle_increment=0.0), "angle_increment != 0"), (dict(range_min=6.0), "range_min < range_max"),
     (dict(angle_min=math.nan), "scan angles and range limits must be finite")],
)
def test_add_scan_rejects_a_malformed_scan(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(MessageError, match=match):
        ObstacleMemory().add_scan(0.0, RobotState(), beams({}), **{**FRONT, **kwargs})


def test_add_scan_rejects_a_non_finite_robot_pose() -> None:
    with pytest.raises(MessageError, match="robot pose"):
        ObstacleMemory().add_scan(0.0, RobotState(x=math.nan), beams({}), **FRONT)


def test_add_depth_rejects_a_malformed_image() -> None:
    with pytest.raises(MessageError, match="2-D image"):
        ObstacleMemory().add_depth(0.0, RobotState(), np.zeros(10), FX, FY, CX, CY, (0, 0, 1, 0, 0, 0))
    with pytest.raises(MessageError, match="fx, fy > 0"):
        ObstacleMemory().add_depth(0.0, RobotState(), np.zeros((4, 4)), 0.0, FY, CX, CY, (0, 0, 1, 0, 0, 0))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"resolution_m": 0.0}, "resolution_m=0.0 is out of range"), ({"radius_m": 0.01}, "radius_m"),
     ({"depth_min_height_m": 3.0}, "must be below"), ({"depth_stride": 0}, "depth_stride"),
     ({"decay_s": -1.0}, "decay_s")],
)
def test_obstacle_memory_config_rejects_bad_values(overrides: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ObstacleMemoryConfig(**overrides)  # type: ignore[arg-type]
