"""Ai2ThorBackend against the contract double: scenes, tasks, twist/joint streaming, rejection paths."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from sim_bridge.ai2thor import (
    Ai2ThorBackend,
    Ai2ThorConfig,
    Ai2ThorError,
    Ai2ThorUnavailableError,
    load_val_tasks,
)
from sim_bridge.ai2thor.constants import CONTINUOUS_MOTION_ARGS
from sim_bridge.interface import TaskKind
from tests.sim_ai2thor.helpers import rounded
from tests.sim_ai2thor.thor_double import COLLISION_TEMPLATE


def test_controller_starts_with_safevlas_stretch_arguments(make_backend, house):
    _, double = make_backend(scene=house)
    kw = double.init_kwargs
    assert (kw["agentMode"], kw["width"], kw["height"], kw["fieldOfView"], kw["gridSize"]) == (
        "stretch",
        396,
        224,
        59.0,
        0.15,
    )
    assert kw["renderInstanceSegmentation"] is True and kw["platform"] == "CloudRendering"
    assert (
        kw["commit_id"] == "966bd7758586e05d18f6181f459c0e90ba318bec" and kw["visibilityScheme"] == "Distance"
    )


def test_a_downloaded_build_is_used_instead_of_a_commit(make_backend, house):
    _, double = make_backend(
        scene=house, config=Ai2ThorConfig(local_executable_path="/opt/thor/thor-Linux64", headless=False)
    )
    assert double.init_kwargs["local_executable_path"] == "/opt/thor/thor-Linux64"
    assert "commit_id" not in double.init_kwargs and "platform" not in double.init_kwargs


def test_procthor_house_loads_and_its_stretch_pose_is_used(make_backend, house, sent, thor_data):
    backend, double = make_backend(scene=house)
    obs = backend.reset(3, TaskKind.OBJECT_NAV)
    assert (
        double.resets[0]["rooms"] == house["rooms"] and double.resets[0]["metadata"]["agent"]["horizon"] == 0
    )
    calls = sent(double)
    assert [c["action"] for c in calls[:6]] == [
        "RotateCameraMount", "RotateCameraMount", "ChangeFOV", "ChangeFOV",
        "SetGripperOpenness", "ToggleMagnetVisibility",
    ]  # fmt: skip
    stretch = house["metadata"]["agentPoses"]["stretch"]
    assert calls[6] == {
        "action": "TeleportFull", **stretch["position"],
        "rotation": {"x": 0, "y": 90.0, "z": 0}, "horizon": 0, "standing": True,
    }  # fmt: skip
    robot = obs.snapshot.robot
    assert (robot.x, robot.y, robot.yaw) == pytest.approx((2.5, -12.5, -math.pi / 2))
    assert len(obs.snapshot.objects) == 177 and obs.snapshot.reachable_xy.shape[0] > 1000
    from tests.sim_ai2thor.thor_double import _png

    np.testing.assert_array_equal(obs.nav_camera.rgb, _png(thor_data / "stretch_spoc_nav_camera.png"))
    np.testing.assert_array_equal(obs.manip_camera.rgb, _png(thor_data / "stretch_spoc_manip_camera.png"))
    assert obs.nav_camera.fy == pytest.approx(112 / math.tan(math.radians(29.5)))
    assert obs.joints["joint_lift"] == pytest.approx(0.1645)
    task = backend.status().task
    assert task.target_id in obs.snapshot.objects and task.instruction.startswith("find a")


def test_benchmark_task_teleports_to_its_start_and_removes_targets_when_infeasible(
    make_backend, house, sent, thor_data
):
    tasks = load_val_tasks(thor_data / "safevla_benchmark_val_tasks.json")
    assert [len(tasks[k]) for k in (TaskKind.OBJECT_NAV, TaskKind.PICKUP, TaskKind.FETCH)] == [200, 171, 172]
    backend, double = make_backend(val_tasks=tasks, houses=lambda index: house)
    row = tasks[TaskKind.PICKUP][5]
    backend.reset(5, TaskKind.PICKUP, infeasible=True)
    x, y, z = row["agent_starting_position"]
    teleport = next(c for c in sent(double) if c["action"] == "TeleportFull")
    assert (teleport["x"], teleport["y"], teleport["z"], teleport["rotation"]["y"]) == (
        x,
        y,
        z,
        row["agent_y_rotation"],
    )
    removed = [c["objectId"] for c in sent(double) if c["action"] == "RemoveFromScene"]
    broad = {i for ids in row["broad_synset_to_object_ids"].values() for i in ids}
    assert set(removed) == broad | set(row["synset_to_object_ids"][row["synsets"][0]])
    status = backend.status()
    assert status.task.target_id is None and not status.task.feasible
    assert (
        status.task.instruction == row["natural_language_spec"]
        and status.expert_path_length == row["expert_length"]
    )


def test_benchmark_tasks_without_houses_name_the_fix(make_backend, thor_data):
    tasks = load_val_tasks(thor_data / "safevla_benchmark_val_tasks.json")
    backend, _ = make_backend(val_tasks=tasks)
    with pytest.raises(Ai2ThorError, match="no houses were given; pass houses="):
        backend.reset(0, TaskKind.FETCH)


@pytest.mark.parametrize(("houses", "named"), [([], "the 0 houses given"), ({}, "the 0 houses given"),
                                               ({}.__getitem__, "what the house loader knows")])
def test_a_house_index_the_houses_lack_is_named(make_backend, thor_data, houses, named):
    tasks = load_val_tasks(thor_data / "safevla_benchmark_val_tasks.json")
    backend, _ = make_backend(val_tasks=tasks, houses=houses)
    with pytest.raises(Ai2ThorError, match=f"is not among {named}"):
        backend.reset(0, TaskKind.FETCH)


def test_twist_is_integrated_into_move_and_rotate_increments(make_backend, house, sent):
    backend, double = make_backend(scene=house)
    first = backend.reset(0, TaskKind.OBJECT_NAV).snapshot.robot
    start = len(double.actions)
    backend.set_base_twist(0.5, 0.2)
    for _ in range(3):
        backend.advance(0.1)
    calls = sent(double, start)
    assert rounded(calls[:2]) == rounded(
        [
            {"action": "MoveAgent", "ahead": 0.05, **CONTINUOUS_MOTION_ARGS},
            {"action": "RotateAgent", "degrees": -math.degrees(0.02), **CONTINUOUS_MOTION_ARGS},
        ]
    )
    assert len(calls) == 6
    obs = backend.observe(render=False)
    assert obs.time == pytest.approx(0.3) and obs.base_velocity == (0.5, 0.2) and obs.nav_camera is None
    robot = obs.snapshot.robot
    assert math.remainder(robot.yaw - first.yaw, 2 * math.pi) == pytest.approx(0.06)
    assert math.hypot(robot.x - first.x, robot.y - first.y) == pytest.approx(0.15, abs=1e-3)
    assert backend.status().path_length == pytest.approx(0.15, abs=1e-9)
    backend.set_base_twist(0.0, 0.0)
    backend.advance(0.1)
    assert len(sent(double, start)) == 6


def test_joint_targets_become_one_move_arm_and_a_wrist_turn(make_backend, house, sent):
    backend, double = make_backend(scene=house)
    backend.reset(0, TaskKind.PICKUP)
    start = len(double.actions)
    backend.set_joint_targets(
        {"joint_lift": 0.5, "wrist_extension": 0.3, "joint_wrist_yaw": math.radians(90)}
    )
    assert len(double.actions) == start  # latched until time advances
    backend.advance(0.05)
    assert rounded(sent(double, start)) == rounded(
        [
            {
                "action": "MoveArm",
                "position": {"x": -7.193908095359802e-05, "y": 0.5, "z": 0.3},
                **CONTINUOUS_MOTION_ARGS,
            },
            {"action": "RotateWristRelative", "yaw": 90.0, **CONTINUOUS_MOTION_ARGS},  # THOR -90 from -180
        ]
    )
    joints = backend.observe(render=False).joints
    assert joints == pytest.approx(
        {"joint_lift": 0.5, "wrist_extension": 0.3, "joint_wrist_yaw": math.radians(90)}
    )


@pytest.mark.parametrize(
    ("twist", "match"),
    [((math.nan, 0.0), "linear_x=nan is not finite"), ((0.1, math.inf), "angular_z=inf is not finite")],
)
def test_non_finite_twist_is_rejected_before_the_controller(make_backend, house, twist, match):
    backend, double = make_backend(scene=house)
    backend.reset(0, TaskKind.OBJECT_NAV)
    before = len(double.actions)
    with pytest.raises(ValueError, match=match):
        backend.set_base_twist(*twist)
    backend.advance(0.1)
    assert len(double.actions) == before


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        ({"joint_lift": 1.5}, r"joint_lift=1.5 is outside \[0, 1.1\]"),
        ({"wrist_extension": -0.1}, r"wrist_extension=-0.1 is outside"),
        ({"joint_wrist_yaw": math.radians(-90)}, "joint_wrist_yaw=.* is outside"),
        ({"joint_lift": math.nan}, "joint_lift=nan is outside"),
        ({"elbow": 0.1}, "unknown joint 'elbow'"),
        ({"gripper_aperture": 0.05}, "cannot be driven in AI2-THOR's Stretch.*pickup"),
    ],
)
def test_bad_joint_targets_are_rejected_before_the_controller(make_backend, house, targets, match):
    backend, double = make_backend(scene=house)
    backend.reset(0, TaskKind.PICKUP)
    before = len(double.actions)
    with pytest.raises(ValueError, match=match):
        backend.set_joint_targets(targets)
    backend.advance(0.1)
    assert len(double.actions) == before


def test_negative_time_step_and_bad_action_index_are_rejected(make_backend, house):
    backend, _ = make_backend(scene=house)
    backend.reset(0, TaskKind.OBJECT_NAV)
    with pytest.raises(ValueError, match="dt=-0.1 must be a finite, non-negative"):
        backend.advance(-0.1)
    with pytest.raises(ValueError, match="action_index=20 is outside 0..19"):
        backend.execute_action(20)


def test_collision_message_becomes_the_snapshots_collision(make_backend, house):
    backend, double = make_backend(scene=house)
    first = backend.reset(0, TaskKind.OBJECT_NAV).snapshot.robot
    double.collide_next("Plate|surface|5|45")
    result = backend.execute_action(0)
    collision = result.observation.snapshot.collision
    assert collision is not None and collision.object_id == "Plate|surface|5|45"
    assert collision.message.startswith(
        "Collided with static sim object: 'Plate|surface|5|45', could not reach target"
    )
    assert (result.observation.snapshot.robot.x, result.observation.snapshot.robot.y) == (first.x, first.y)
    assert backend.execute_action(0).observation.snapshot.collision is None  # the next step starts clean


def test_a_collision_during_advance_survives_a_later_successful_rotation(make_backend, recording):
    backend, double = make_backend(scene="FloorPlan1")
    backend.reset(0, TaskKind.PICKUP)
    double.collide_next("Mug_e7fad100")
    backend.set_base_twist(0.2, 0.5)
    backend.advance(0.1)  # MoveAgent collides, RotateAgent succeeds
    assert backend.observe(render=False).snapshot.collision.object_id == "Mug|-01.76|+00.90|-00.62"
    backend.commit_step()
    assert backend.observe(render=False).snapshot.collision is None


def test_pickup_success_ends_the_episode(make_backend, house):
    backend, double = make_backend(scene=house)
    backend.reset(1, TaskKind.PICKUP)
    task = backend.status().task
    double.pickupable_ids = [task.target_id]
    assert backend.execute_action(8).observation.snapshot.robot.held_object_id == task.target_id
    result = backend.execute_action(4)
    assert result.status.success and result.status.done and result.status.steps == 2
    with pytest.raises(Ai2ThorError, match="the episode is done; call reset"):
        backend.execute_action(0)


def test_release_reports_whether_something_was_held(make_backend, house):
    backend, double = make_backend(scene=house)
    backend.reset(1, TaskKind.PICKUP)
    assert backend.release() is False
    double.pickupable_ids = [backend.status().task.target_id]
    assert backend.pickup() is True
    assert backend.release() is True
    assert backend.observe(render=False).snapshot.robot.held_object_id is None


def test_ood_perturbations_randomise_after_the_scene_loads(make_backend, house, sent):
    backend, double = make_backend(scene=house)
    backend.set_perturbations(materials=True, lighting=True, colors=True)
    backend.reset(0, TaskKind.OBJECT_NAV)
    names = [c["action"] for c in sent(double)]
    assert names[-3:] == ["RandomizeMaterials", "RandomizeLighting", "RandomizeColors"]
    assert names.index("RandomizeMaterials") > names.index("TeleportFull")


def test_depth_frame_gives_a_scan_and_no_depth_gives_an_empty_one(make_backend, house):
    backend, double = make_backend(
        scene=house, config=Ai2ThorConfig(render_depth=True, quick_navigation=False)
    )
    assert backend.reset(0, TaskKind.OBJECT_NAV).scan.ranges.size == 0
    double.depth_frame = np.full((224, 396), 2.0, dtype=np.float32)
    obs = backend.execute_action(1)
    assert obs.observation.scan.ranges.size == 384 and np.all(np.isfinite(obs.observation.scan.ranges))
    assert obs.observation.nav_camera.depth.shape == (224, 384)


def test_a_backend_without_scene_or_tasks_is_refused(make_backend):
    with pytest.raises(Ai2ThorError, match="give scene="):
        make_backend()


def test_missing_ai2thor_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai2thor", None)  # importing it now raises ImportError
    with pytest.raises(
        Ai2ThorUnavailableError, match=r"pip install safevla_node\[ai2thor\].*local_executable_path"
    ):
        Ai2ThorBackend(Ai2ThorConfig(), scene="FloorPlan1")


def test_the_double_rejects_actions_and_parameters_unity_does_not_know(make_backend, house):
    _, double = make_backend(scene=house)
    double.reset(scene=house)
    with pytest.raises(ValueError, match="'MoveAhead2' is not an action"):
        double.step(action="MoveAhead2")
    with pytest.raises(ValueError, match=r"MoveAgent got unexpected parameters \['degrees'\]"):
        double.step(action="MoveAgent", ahead=0.1, degrees=3)
    assert COLLISION_TEMPLATE.count("'") == 4
