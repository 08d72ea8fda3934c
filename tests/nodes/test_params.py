"""Config dataclasses as ROS parameters, on a real rclpy node, and the shipped parameter file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from safevla_node.errors import ConfigError
from safevla_node.nodes.params import (
    config_from_parameters,
    declare_config,
    flatten_fields,
    read_config,
    watch_config,
)
from safevla_node.safety.monitor import MonitorConfig

PARAMS_FILE = Path(__file__).resolve().parents[2] / "config" / "safety_monitor.yaml"


@pytest.fixture
def make_node(ros_domain) -> Iterator:
    """Nodes in a private context (no executor is needed: parameters are local calls)."""
    context = Context()
    rclpy.init(context=context, domain_id=ros_domain.domain_id)
    nodes = []

    def make(overrides: dict | None = None) -> Node:
        node = Node("params_test", context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in (overrides or {}).items()])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def test_nested_fields_become_dotted_parameters_with_their_docs(make_node):
    node = make_node()
    declare_config(node, MonitorConfig, read_only=("control_rate_hz",))
    descriptor = node.describe_parameter("source_timeout_s.scan")
    assert descriptor.description.startswith("laser scan timeout (s)")
    assert node.describe_parameter("control_rate_hz").read_only
    assert not descriptor.read_only
    assert read_config(node, MonitorConfig) == MonitorConfig()


def test_an_empty_list_in_a_parameter_file_reads_as_an_empty_list(ros_domain, tmp_path):
    # rcl's YAML parser leaves a parameter given as `[]` unset (None), as the shipped files give several
    params_file = tmp_path / "params.yaml"
    params_file.write_text("params_test:\n  ros__parameters:\n    depth_camera_joints: []\n"
                           "    required_sources: [scan, odom]\n")
    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(params_file)], context=context,
               domain_id=ros_domain.domain_id)
    try:
        node = Node("params_test", context=context)
        declare_config(node, MonitorConfig)
        assert node.get_parameter("depth_camera_joints").value is None
        config = read_config(node, MonitorConfig)
        assert config.depth_camera_joints == () and config.required_sources == ("scan", "odom")
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_overrides_are_read_back_and_ints_are_accepted_for_floats(make_node):
    node = make_node({"control_rate_hz": 50, "required_sources": ["scan"], "source_timeout_s.odom": 0.2})
    declare_config(node, MonitorConfig)
    config = read_config(node, MonitorConfig)
    assert config.control_rate_hz == 50.0
    assert config.required_sources == ("scan",)
    assert config.source_timeout_s.odom == 0.2


def test_a_bad_start_up_value_names_the_parameter(make_node):
    node = make_node({"source_timeout_s.scan": -0.5})
    declare_config(node, MonitorConfig)
    with pytest.raises(ConfigError, match=r"source_timeout_s: scan=-0.5 is out of range"):
        read_config(node, MonitorConfig)


def test_a_wrong_type_names_the_parameter(make_node):
    node = make_node({"deadman_timeout_s": "soon"})
    declare_config(node, MonitorConfig)
    with pytest.raises(ConfigError, match=r"deadman_timeout_s: expected a number, got 'soon'"):
        read_config(node, MonitorConfig)


def test_runtime_changes_are_validated_against_the_whole_config(make_node):
    node = make_node()
    declare_config(node, MonitorConfig)
    applied = []
    watch_config(node, MonitorConfig, applied.append)
    result = node.set_parameters([Parameter("fault_hold_s", value=-1.0)])[0]
    assert not result.successful
    assert "fault_hold_s=-1.0 is out of range" in result.reason
    assert node.get_parameter("fault_hold_s").value == 1.0 and applied == []
    assert node.set_parameters([Parameter("fault_hold_s", value=2.0)])[0].successful
    assert applied[-1].fault_hold_s == 2.0


def test_unknown_read_only_names_are_a_programming_error(make_node):
    with pytest.raises(ValueError, match=r"read_only names unknown parameters \['control_rate'\]"):
        declare_config(make_node(), MonitorConfig, read_only=("control_rate",))


def test_config_from_parameters_nests_dotted_names():
    config = config_from_parameters(MonitorConfig, {"frames.scan": "base_laser", "shield.horizon_s": 2.0})
    assert config.frames.scan == "base_laser" and config.shield.horizon_s == 2.0


def _flatten(mapping: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _node_configs() -> list[tuple[str, type]]:
    """(node name, config class) of every node whose parameters come from a config dataclass."""
    from safevla_node.policy_runner import PolicyNodeConfig
    from sim_bridge.bridge import BridgeConfig

    return [("safety_monitor", MonitorConfig), ("policy_node", PolicyNodeConfig), ("sim_bridge", BridgeConfig)]


@pytest.mark.parametrize(("node", "config_class"), _node_configs(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_parameter_file_lists_every_parameter_with_its_default_and_a_comment(node, config_class):
    params_file = PARAMS_FILE.with_name(f"{node}.yaml")
    params = _flatten(yaml.safe_load(params_file.read_text())[node]["ros__parameters"])
    assert params == {name: default for name, default, _ in flatten_fields(config_class)}
    lines = params_file.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":") and i > 0:
            where = f"{params_file.name}:{i + 1}"
            assert lines[i - 1].strip().startswith("#"), f"{where} has no comment: {line!r}"
