"""The stack description, and the launch files that must follow it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from safevla_node.errors import ConfigError
from safevla_node.stack import LAUNCH_ARGUMENTS, load_stack

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stack():
    return load_stack()


def test_sim_profile_runs_bridge_monitor_and_policy_on_sim_time(stack):
    launches = stack.resolve("sim")
    assert [n.name for n in launches] == ["sim_bridge", "safety_monitor", "policy_node"]
    assert all(n.parameters["use_sim_time"] is True for n in launches)


def test_each_profile_loads_its_robot_unless_the_launch_argument_names_one(stack):
    def robot_file(profile, arguments=None):
        monitor = next(n for n in stack.resolve(profile, arguments) if n.name == "safety_monitor")
        return monitor.params_files[-1].name

    assert robot_file("sim") == "mujoco_sim.yaml"
    assert robot_file("robot") == robot_file("replay") == "stretch3.yaml"
    assert robot_file("sim", {"robot": "stretch3"}) == "stretch3.yaml"


def test_the_sim_robot_profile_and_the_suites_share_one_shield_body():
    from safevla_node.evaluation.suite import load_suite
    from safevla_node.paths import config_path

    suite = load_suite(config_path("eval_suite_heldout.yaml"))
    assert (suite.shield_config.footprint_length_m, suite.shield_config.mast_xy_m) == (0.34, (-0.07, 0.09))


def test_a_suite_naming_a_robot_profile_without_a_shield_section_is_refused(tmp_path):
    from safevla_node.evaluation.suite import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text("policies: [{name: e, kind: expert}]\nblocks: [{name: b}]\nshield_config: robots/stretch3.yaml\n")
    with pytest.raises(ConfigError, match="robots/stretch3.yaml has no safety_monitor.ros__parameters.shield"):
        load_suite(suite)


def test_a_suite_can_change_fields_of_a_robot_profiles_shield(tmp_path):
    from safevla_node.evaluation.suite import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text("policies: [{name: e, kind: expert}]\nblocks: [{name: b}]\n"
                     "shield_config: {profile: robots/mujoco_sim.yaml, danger_margin_m: 0.15}\n")
    shield = load_suite(suite).shield_config
    assert (shield.footprint_length_m, shield.danger_margin_m, shield.unstable_margin_m) == (0.34, 0.15, 0.15)
    suite.write_text("policies: [{name: e, kind: expert}]\nblocks: [{name: b}]\n"
                     "shield_config: {profile: robots/mujoco_sim.yaml, danger_margin: 0.15}\n")
    with pytest.raises(ConfigError, match="danger_margin"):
        load_suite(suite)


def test_robot_profile_remaps_to_the_stretch_driver_topics(stack):
    monitor = next(n for n in stack.resolve("robot") if n.name == "safety_monitor")
    assert monitor.remappings["cmd_vel"] == "/stretch/cmd_vel"
    assert monitor.parameters["use_sim_time"] is False
    assert "sim_bridge" not in [n.name for n in stack.resolve("robot")]


def test_a_node_whose_requirement_is_not_installed_is_skipped_with_a_warning(stack, caplog):
    import importlib.util

    names = [n.name for n in stack.resolve("robot")]
    if importlib.util.find_spec("control_msgs") is None:
        assert "arm_action_relay" not in names
        assert "arm_action_relay: it needs control_msgs, which is not installed" in caplog.text
    else:
        assert "arm_action_relay" in names


def test_launch_arguments_become_node_parameters(stack):
    launches = {n.name: n for n in stack.resolve("sim", {"shield": "off", "backend": "ai2thor",
                                                          "instruction": "find a mug"})}
    assert launches["safety_monitor"].parameters["shield.enabled"] is False
    assert launches["sim_bridge"].parameters["backend"] == "ai2thor"
    assert launches["policy_node"].parameters["instruction"] == "find a mug"
    assert "checkpoint" not in launches["policy_node"].parameters  # empty argument: node default


def test_ros_args_carry_name_params_files_overrides_and_remaps(stack):
    monitor = next(n for n in stack.resolve("robot") if n.name == "safety_monitor")
    args = monitor.ros_args()
    assert args[:3] == ["--ros-args", "-r", "__node:=safety_monitor"]
    assert args.count("--params-file") == 2
    assert "use_sim_time:=false" in args
    assert "cmd_vel:=/stretch/cmd_vel" in args


@pytest.mark.parametrize(
    ("profile", "arguments", "message"),
    [
        ("moon", {}, "unknown profile 'moon'"),
        ("sim", {"turbo": "1"}, "unknown launch argument 'turbo'"),
        ("sim", {"shield": "maybe"}, "shield='maybe' must be true or false"),
        ("sim", {"robot": "r2d2"}, "no config file 'robots/r2d2.yaml'"),
    ],
)
def test_bad_profile_or_argument_is_rejected_with_its_name(stack, profile, arguments, message):
    with pytest.raises(ConfigError, match=message):
        stack.resolve(profile, arguments)


def test_description_naming_an_undefined_node_is_rejected(tmp_path):
    bad = tmp_path / "stack.yaml"
    bad.write_text("nodes: {}\nprofiles:\n  sim:\n    nodes: [ghost]\n")
    with pytest.raises(ConfigError, match=r"profiles.sim.nodes must list nodes"):
        load_stack(bad)


def test_description_naming_an_unknown_robot_profile_is_rejected(tmp_path):
    bad = tmp_path / "stack.yaml"
    bad.write_text("nodes: {m: {executable: m, module: m, params_file: m.yaml}}\n"
                   "profiles:\n  sim:\n    nodes: [m]\n    robot: r2d2\n")
    with pytest.raises(ConfigError, match="no config file 'robots/r2d2.yaml'"):
        load_stack(bad)


def test_every_stack_executable_is_a_console_script(stack):
    setup_source = (REPO_ROOT / "setup.py").read_text()
    for node in stack.nodes.values():
        assert f'"{node["executable"]}": "{node["module"]}:main"' in setup_source


@pytest.mark.parametrize("launch_file", sorted((REPO_ROOT / "launch").glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_file_builds_its_profile_from_the_shared_description(launch_file, stack):
    tree = ast.parse(launch_file.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "launch_description"]
    assert len(calls) == 1, "a launch file must delegate to safevla_node.launch_description"
    profile = calls[0].args[0].value
    assert launch_file.name == f"{profile}.launch.py"
    assert profile in stack.profiles
    # Nothing else may start nodes behind the description's back.
    assert "launch_ros" not in launch_file.read_text()


def test_every_launch_argument_targets_a_node_of_the_description(stack):
    for argument in LAUNCH_ARGUMENTS:
        if argument.target:
            assert argument.target.split(".")[0] in stack.nodes
