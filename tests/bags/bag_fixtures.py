"""Shared facts about the real test bags (from /work/shared/data/bags/SOURCES.md) and helpers."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

BAGS_DIR = Path("/work/shared/data/bags")
NAV2 = BAGS_DIR / "nav2_cm_moving_obstacle"
WALKER = BAGS_DIR / "tb3_gazebo_walker"
ROOMBA = BAGS_DIR / "tb3_gazebo_roomba"
MINI = BAGS_DIR / "tb3_mini_roomba_scan_cmdvel"
ALL_BAGS = (NAV2, WALKER, ROOMBA, MINI)

#: Per bag: storage, total messages, duration (s) and the topic counts SOURCES.md lists.
EXPECTED = {
    NAV2.name: ("mcap", 693, 11.50, {"/clock": 231, "/cmd_vel_smoothed": 231, "/local_costmap/costmap": 231}),
    WALKER.name: ("sqlite3", 9882, 27.72, {
        "/scan": 138, "/cmd_vel": 137, "/odom": 810, "/imu": 5516, "/tf": 1888, "/tf_static": 2, "/clock": 275,
        "/joint_states": 810, "/performance_metrics": 138, "/rosout": 165, "/robot_description": 2,
        "/parameter_events": 1, "/events/write_split": 0}),
    ROOMBA.name: ("sqlite3", 7811, 23.83, {
        "/odom": 670, "/cmd_vel": 22, "/imu": 4572, "/tf": 1116, "/tf_static": 1, "/clock": 229,
        "/joint_states": 672, "/performance_metrics": 115, "/rosout": 369, "/parameter_events": 44,
        "/robot_description": 1, "/scan": 0}),
    MINI.name: ("sqlite3", 340, 33.83, {"/scan": 170, "/cmd_vel": 170}),
}

requires_bags = pytest.mark.skipif(not BAGS_DIR.is_dir(), reason=f"real bags not available at {BAGS_DIR}")


def fingerprint(folder: Path) -> dict[str, tuple[str, int, int]]:
    """sha256, size and mtime (ns) of every file under ``folder``: proof that nothing was written."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def writable_copy(bag: Path, dest: Path) -> Path:
    """A copy of ``bag`` under ``dest`` that a test may damage."""
    target = dest / bag.name
    shutil.copytree(bag, target)
    for p in [target, *target.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return target

#: The monitor node's shipped parameter file.
REPO_ROOT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "safety_monitor.yaml"
