"""The stack description: which nodes run in which profile, with which parameters and remappings.

``config/stack.yaml`` is the single source. ``launch/*.launch.py`` turn it into launch_ros actions and
``safevla up`` into supervised processes, so a robot launched either way runs the same graph.
Launch arguments (checkpoint, instruction, backend, shield, robot) map onto node parameters here, once.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safevla_node.config import load_yaml
from safevla_node.errors import ConfigError
from safevla_node.paths import config_path

__all__ = ["LAUNCH_ARGUMENTS", "LaunchArgument", "NodeLaunch", "StackDescription", "load_stack"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchArgument:
    """A launch argument and the node parameter it sets (``node.param``); empty values are not passed."""

    name: str
    default: str
    description: str
    target: str  # "<node>.<parameter>", or "" for arguments handled by the stack itself


#: Robot profile of a stack profile that names none.
DEFAULT_ROBOT = "stretch3"

LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("checkpoint", "", "policy checkpoint (our format, SafeVLA .pt or Lightning .ckpt); "
                   "empty: the shipped policy", "policy_node.checkpoint"),
    LaunchArgument("instruction", "", "natural-language task; empty: wait for safevla/instruction",
                   "policy_node.instruction"),
    LaunchArgument("backend", "mujoco", "simulator backend of the sim profile: mujoco or ai2thor",
                   "sim_bridge.backend"),
    LaunchArgument("shield", "true", "predictive shield on (true) or fail-safe checks only (false)",
                   "safety_monitor.shield.enabled"),
    LaunchArgument("robot", "", "robot profile: config/robots/<robot>.yaml; empty: the profile's own "
                   "(sim: mujoco_sim, robot and replay: stretch3)", ""),
)


@dataclass(frozen=True)
class NodeLaunch:
    """Everything needed to start one node, by ros2 launch or as a plain process."""

    name: str
    executable: str
    module: str
    params_files: tuple[Path, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    remappings: Mapping[str, str] = field(default_factory=dict)

    def ros_args(self) -> list[str]:
        """The ``--ros-args`` tail of a command line that starts this node."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        for path in self.params_files:
            args += ["--params-file", str(path)]
        for name, value in self.parameters.items():
            args += ["-p", f"{name}:={_param_text(value)}"]
        for src, dst in self.remappings.items():
            args += ["-r", f"{src}:={dst}"]
        return args


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "on", "yes"):
        return True
    if lowered in ("false", "0", "off", "no"):
        return False
    raise ConfigError(f"launch argument {name}={text!r} must be true or false")


@dataclass(frozen=True)
class StackDescription:
    """The parsed ``config/stack.yaml``."""

    nodes: Mapping[str, Mapping[str, str]]
    profiles: Mapping[str, Mapping[str, Any]]
    source: Path

    def resolve(self, profile: str, arguments: Mapping[str, str] | None = None) -> list[NodeLaunch]:
        """The nodes of ``profile`` with launch ``arguments`` applied.

        Raises:
            ConfigError: unknown profile or argument, a bad value, or a missing parameter file.
        """
        if profile not in self.profiles:
            raise ConfigError(f"unknown profile {profile!r} in {self.source}; valid: {sorted(self.profiles)}")
        known = {a.name: a for a in LAUNCH_ARGUMENTS}
        values = {a.name: a.default for a in LAUNCH_ARGUMENTS}
        for name, value in (arguments or {}).items():
            if name not in known:
                raise ConfigError(f"unknown launch argument {name!r}; valid: {sorted(known)}")
            values[name] = value
        spec = self.profiles[profile]
        robot_file = config_path(f"robots/{values['robot'] or spec.get('robot', DEFAULT_ROBOT)}.yaml")
        overrides: dict[str, dict[str, Any]] = {n: dict(p) for n, p in (spec.get("parameters") or {}).items()}
        for arg in LAUNCH_ARGUMENTS:
            if not arg.target or values[arg.name] == "":
                continue
            node, param = arg.target.split(".", 1)
            value: Any = _parse_bool(arg.name, values[arg.name]) if arg.name == "shield" else values[arg.name]
            overrides.setdefault(node, {})[param] = value
        launches = []
        for name in spec["nodes"]:
            node = self.nodes[name]
            missing = [m for m in node.get("requires", ()) if importlib.util.find_spec(m) is None]
            if missing:
                LOG.warning("not starting %s: it needs %s, which is not installed", name, ", ".join(missing))
                continue
            params = {"use_sim_time": bool(spec.get("use_sim_time", False)), **overrides.get(name, {})}
            launches.append(
                NodeLaunch(
                    name=name,
                    executable=node["executable"],
                    module=node["module"],
                    params_files=(config_path(node["params_file"]), robot_file),
                    parameters=params,
                    remappings=dict(spec.get("remappings") or {}),
                )
            )
        return launches


def load_stack(path: str | Path | None = None) -> StackDescription:
    """Read and check the stack description (default: the installed ``config/stack.yaml``).

    Raises:
        ConfigError: a malformed description, naming the entry.
    """
    path = Path(path) if path is not None else config_path("stack.yaml")
    data = load_yaml(path)
    nodes, profiles = data.get("nodes"), data.get("profiles")
    if not isinstance(nodes, dict) or not isinstance(profiles, dict):
        raise ConfigError(f"{path}: needs 'nodes' and 'profiles' mappings")
    for name, node in nodes.items():
        missing = {"executable", "module", "params_file"} - set(node or {})
        if missing:
            raise ConfigError(f"{path}: nodes.{name} lacks {sorted(missing)}")
    for name, profile in profiles.items():
        unknown = [n for n in profile.get("nodes", []) if n not in nodes]
        if unknown or not profile.get("nodes"):
            raise ConfigError(f"{path}: profiles.{name}.nodes must list nodes from {sorted(nodes)}, got {unknown}")
        for node_name in profile.get("parameters") or {}:
            if node_name not in nodes:
                raise ConfigError(f"{path}: profiles.{name}.parameters.{node_name} is not a node")
        if "robot" in profile:
            config_path(f"robots/{profile['robot']}.yaml")  # raises, listing the robot profiles there are
    return StackDescription(nodes=nodes, profiles=profiles, source=path)
