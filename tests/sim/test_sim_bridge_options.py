"""The bridge's test-bench settings: a purpose-made scene from a file and a scan cropped to a sector ahead,
plus the shipped parameter file of the bridge node (every parameter, its default, a comment)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from safevla_node.errors import ConfigError
from sim_bridge.bridge import BridgeConfig, SimBridge, crop_scan, scene_source
from sim_bridge.interface import LaserScanData
from tests.sim import scenes



def lidar(first: float = -math.pi, beams: int = 360) -> LaserScanData:
    """A full-circle scan whose range is the beam index (so kept beams can be named)."""
    return LaserScanData(first, 2 * math.pi / beams, 0.05, 10.0, np.arange(beams, dtype=np.float32))


def test_a_half_circle_keeps_the_beams_from_right_to_left_ahead():
    cropped = crop_scan(lidar(), math.pi)
    assert cropped.angle_min == pytest.approx(-math.pi / 2)
    assert cropped.ranges.tolist() == list(range(90, 271))
    assert cropped.angle_increment == lidar().angle_increment


def test_a_sector_across_the_scans_seam_comes_out_contiguous_in_sweep_order():
    cropped = crop_scan(lidar(first=0.0), math.pi / 2)  # beams from 0 to 2 pi: ahead is both ends
    assert cropped.angle_min == pytest.approx(-math.pi / 4)
    assert cropped.ranges.tolist() == [*range(315, 360), *range(0, 46)]


def test_a_full_field_of_view_publishes_the_scan_unchanged():
    scan = lidar()
    assert crop_scan(scan, 2 * math.pi) is scan


def test_a_scan_with_no_beam_ahead_cannot_be_cropped():
    behind = LaserScanData(math.pi * 0.75, 0.01, 0.05, 10.0, np.ones(10, dtype=np.float32))
    with pytest.raises(ValueError, match=r"no beam of the scan lies within 0.5236 rad ahead"):
        crop_scan(behind, math.pi / 6)


def test_bridge_config_rejects_a_field_of_view_out_of_range():
    with pytest.raises(ConfigError, match=r"scan_fov_deg=0.0 is out of range"):
        BridgeConfig(scan_fov_deg=0.0)


def test_no_scene_file_means_generated_homes():
    assert scene_source(BridgeConfig()) is None


def test_a_scene_file_gives_the_same_scene_for_every_seed(tmp_path):
    path = tmp_path / "scene.json"
    path.write_text(scenes.blind_spot().to_json())
    source = scene_source(BridgeConfig(scene_file=str(path)))
    assert source(0).to_json() == source(7).to_json() == scenes.blind_spot().to_json()


@pytest.mark.parametrize(("config", "match"), [
    (BridgeConfig(scene_file="/nonexistent/scene.json"),
     r"scene_file='/nonexistent/scene.json' cannot be read"),
    (BridgeConfig(scene_file="{path}"), r"is not a scene written by Scene.to_json"),
    (BridgeConfig(scene_file="scene.json", backend="ai2thor"), r"needs backend 'mujoco', got 'ai2thor'"),
])
def test_a_bad_scene_file_is_refused_naming_it(tmp_path, config, match):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 0}')
    if config.scene_file == "{path}":
        config = dataclasses.replace(config, scene_file=str(bad))
    with pytest.raises(ConfigError, match=match):
        scene_source(config)


def test_the_bridge_runs_the_scene_from_the_file_and_publishes_the_cropped_scan(tmp_path):
    from sim_bridge.mujoco.backend import MujocoBackend

    path = tmp_path / "scene.json"
    path.write_text(scenes.blind_spot().to_json())
    config = BridgeConfig(scene_file=str(path), scan_fov_deg=180.0, infeasible=True, render=False)
    with MujocoBackend(scene_source=scene_source(config), camera_size=(64, 48)) as backend:
        bridge = SimBridge(backend, config)
        bridge.reset()
        step = bridge.step()
    robot = step.observation.snapshot.robot
    assert (robot.x, robot.y) == pytest.approx(scenes.blind_spot().robot_start[:2], abs=0.02)
    assert len(step.observation.scan.ranges) == 181
    box_ahead = step.observation.scan.ranges[90]  # straight ahead: the box 1.5 m away, less half its size
    assert 1.2 < box_ahead < 1.5



@contextmanager
def _fallback_bridge() -> Iterator[SimBridge]:
    """A continuous bridge in an empty room, reset, that closes a step of its own after 0.2 s of motion."""
    from sim_bridge.mujoco.backend import MujocoBackend

    config = BridgeConfig(infeasible=True, render=False, fallback_step_s=0.2)
    with MujocoBackend(scene_source=lambda _seed: scenes.empty_room(), camera_size=(64, 48)) as backend:
        bridge = SimBridge(backend, config)
        bridge.reset()
        yield bridge


def test_a_step_the_bridge_closes_on_its_own_reports_its_cost():
    """Teleop has no primitives: after ``fallback_step_s`` of motion the bridge closes the cost step itself
    and says so, so the node can publish it like any other."""
    with _fallback_bridge() as bridge:
        bridge.on_twist(0.1, 0.0)
        closed = [s.closed_cost for s in (bridge.step() for _ in range(20)) if s.closed_cost is not None]
    assert len(closed) == 1 and closed[0].total == 0
    assert bridge.status().steps == 1


def test_a_twist_handled_after_an_aborted_primitive_closes_no_step_of_its_own():
    """The monitor's last twist of an aborted primitive can reach the bridge after the ABORTED status (two
    topics, no order between them): the base moves a few millimetres, which is no teleop step."""
    with _fallback_bridge() as bridge:
        bridge.on_primitive_started()
        bridge.on_twist(0.1, 0.0)
        for _ in range(10):
            bridge.step()
        bridge.on_primitive_finished(0)  # ABORTED: the monitor stopped it
        bridge.on_twist(0.1, 0.0)  # the twist sent before the abort, handled after it
        bridge.step()
        bridge.on_twist(0.0, 0.0)  # the monitor's stop
        assert all(bridge.step().closed_cost is None for _ in range(50))
    assert bridge.status().steps == 1


def test_motion_of_a_running_primitive_never_closes_a_step_of_its_own():
    """A move_ahead takes longer than ``fallback_step_s``: its DONE closes the one step, not the fallback."""
    with _fallback_bridge() as bridge:
        bridge.on_primitive_started()
        bridge.on_twist(0.1, 0.0)
        assert all(bridge.step().closed_cost is None for _ in range(30))
        bridge.on_primitive_finished(0)
    assert bridge.status().steps == 1
