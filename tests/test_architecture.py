"""Layering rules of STYLE.md, checked on the source: cores stay plain Python.

rclpy (and ROS message packages) only in safevla_node/nodes/, torch only in policies/, mujoco only in
sim_bridge/mujoco/. A core that imported rclpy could not run in bag audit, evaluation or training without ROS.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "nav_msgs", "trajectory_msgs",
               "diagnostic_msgs", "visualization_msgs", "std_srvs", "rosgraph_msgs", "builtin_interfaces"}
RULES = {
    # top-level module -> the only folders (relative to the repo root) allowed to import it
    **{m: ("safevla_node/nodes", "safevla_node/cli", "bench") for m in ROS_MODULES},
    "torch": ("policies", "bench"),
    "mujoco": ("sim_bridge/mujoco", "bench"),
}
SOURCE_DIRS = ("safevla_node", "sim_bridge", "policies")


def _imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (REPO_ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_module_imports_only_what_its_layer_may(path: Path):
    rel = path.relative_to(REPO_ROOT).as_posix()
    for module in _imported_top_modules(path) & RULES.keys():
        allowed = RULES[module]
        assert rel.startswith(allowed), f"{rel} imports {module}, which only {allowed} may import"


HUMBLE_INCOMPATIBLE = {
    r"^\s*with rclpy\.init\(": "rclpy.init() returns no context manager on Humble: call init() and try_shutdown()",
}


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_module_uses_only_rclpy_apis_common_to_humble_jazzy_and_kilted(path: Path):
    source = path.read_text()
    for pattern, why in HUMBLE_INCOMPATIBLE.items():
        assert not re.search(pattern, source, re.MULTILINE), f"{path.name}: {why}"
