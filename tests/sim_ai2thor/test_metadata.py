"""Metadata conversion on real recorded AI2-THOR events (shared/data/ai2thor) and the logged Stretch arm."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim_bridge.ai2thor import metadata as md
from tests.sim_ai2thor.thor_double import COLLISION_TEMPLATE

MUG = "ithor_default_FloorPlan1_pickup_mug"
BOOK = "ithor_default_FloorPlan301_look_in_light_book"
MUG_ID = "Mug|-01.76|+00.90|-00.62"
APPLE_ID = "Apple|-00.47|+01.15|+00.48"
BOOK_ID = "Book|-00.90|+00.56|+01.18"
POSE_FILE = Path(__file__).with_name("data") / "stretch_agent_pose.json"


def _angle_diff(a: float, b: float) -> float:
    return math.atan2(math.sin(a - b), math.cos(a - b))


def test_agent_position_maps_unity_axes_to_rep103(recording):
    agent = recording(BOOK)["events"][0]["agent"]  # THOR (2.2, 0.91, 1.0), heading 270
    robot = md.robot_state(recording(BOOK)["events"][0])
    assert (robot.x, robot.y) == pytest.approx((1.0, -2.2))
    assert md.thor_position_to_ros(agent["position"]) == pytest.approx((1.0, -2.2, 0.910415768623352))
    assert robot.yaw == pytest.approx(math.pi / 2)  # THOR heading 270 = facing -x = ROS +y


def test_moves_of_the_recorded_episode_go_along_the_converted_heading(recording):
    rec = recording(BOOK)
    checked = 0
    for call, before, after in zip(
        rec["controller_actions"][1:], rec["events"][:-1], rec["events"][1:], strict=True
    ):
        if call["action"] not in ("MoveAhead", "MoveLeft"):
            continue
        r0, r1 = md.robot_state(before), md.robot_state(after)
        step = np.array([r1.x - r0.x, r1.y - r0.y])
        heading = r0.yaw + (math.pi / 2 if call["action"] == "MoveLeft" else 0.0)
        direction = np.array([math.cos(heading), math.sin(heading)])
        assert step @ direction / np.linalg.norm(step) > 0.99, call  # within ~8 deg (grid snapping)
        checked += 1
    assert checked == 5


def test_recorded_rotations_turn_counter_clockwise_for_left(recording):
    rec = recording(BOOK)
    turns = {"RotateLeft": 1.0, "RotateRight": -1.0}
    checked = 0
    for call, before, after in zip(
        rec["controller_actions"][1:], rec["events"][:-1], rec["events"][1:], strict=True
    ):
        if call["action"] in turns:
            change = _angle_diff(md.robot_state(after).yaw, md.robot_state(before).yaw)
            assert change == pytest.approx(turns[call["action"]] * math.radians(call["degrees"]))
            checked += 1
    assert checked == 3


def test_every_recorded_object_is_converted(recording):
    for stem, count in ((MUG, 77), (BOOK, 54)):
        for i, event in enumerate(recording(stem)["events"]):
            snap = md.snapshot(event, float(i))
            assert len(snap.objects) == count
            assert set(snap.objects) == {o["objectId"] for o in event["objects"]}


def test_held_objects_follow_the_pickup_mug_episode(recording):
    held = [md.robot_state(e).held_object_id for e in recording(MUG)["events"]]
    assert held == [None, APPLE_ID, None, MUG_ID, None]
    snap = md.snapshot(recording(MUG)["events"][3], 3.0)
    assert snap.objects[MUG_ID].held and not snap.objects[APPLE_ID].held


def test_the_book_stays_held_after_its_pickup(recording):
    rec = recording(BOOK)
    picked = [c["action"] for c in rec["controller_actions"]].index("PickupObject")
    assert [md.robot_state(e).held_object_id for e in rec["events"][picked:]] == [BOOK_ID] * (
        len(rec["events"]) - picked
    )
    assert all(md.robot_state(e).held_object_id is None for e in rec["events"][:picked])


def test_object_fields_are_mapped_field_by_field(recording):
    event = recording(MUG)["events"][0]
    raw = next(o for o in event["objects"] if o["objectId"] == MUG_ID)
    obj = md.object_state(raw)
    p, r, s = raw["position"], raw["rotation"], raw["axisAlignedBoundingBox"]["size"]
    assert obj.name == "Mug_e7fad100" and obj.object_type == "Mug"
    assert obj.position == pytest.approx((p["z"], -p["x"], p["y"]))
    assert obj.rotation_deg == pytest.approx((-r["z"], r["x"], -r["y"]))
    assert obj.size == pytest.approx((s["z"], s["x"], s["y"]))
    assert obj.visible is raw["visible"] and not obj.held and not obj.static
    static = {o.object_type for o in md.snapshot(event, 0.0).objects.values() if o.static}
    assert static == {"Floor", "Window"}


def test_collision_message_names_the_object_the_way_safevla_parses_it(recording):
    event = copy.deepcopy(recording(MUG)["events"][0])
    event["errorMessage"] = COLLISION_TEMPLATE.format(name="Mug_e7fad100", target="(1.00, 0.90, 2.00)")
    assert md.collided_name(event["errorMessage"]) == "mug_e7fad100"
    collision = md.collision_event(event)
    assert collision is not None and collision.object_id == MUG_ID
    assert collision.message == event["errorMessage"]


def test_collision_with_structure_has_no_object_id_and_success_has_no_collision(recording):
    event = copy.deepcopy(recording(MUG)["events"][0])
    event["errorMessage"] = (
        "Collided with static structure in scene: 'Wall_3', could not reach target: '(0, 0, 0)'."
    )
    collision = md.collision_event(event)
    assert collision is not None and collision.object_id is None
    event["errorMessage"] = ""
    assert md.collision_event(event) is None
    assert md.collided_name("Object not found") is None


def test_seen_ids_join_visible_flags_and_a_visibility_query(recording):
    event = recording(MUG)["events"][0]
    flagged = {o["objectId"] for o in event["objects"] if o["visible"]}
    assert flagged and md.seen_object_ids(event) == flagged
    assert md.seen_object_ids(event, [MUG_ID]) == flagged | {MUG_ID}


def test_reachable_positions_become_rep103_floor_points():
    points = md.reachable_xy([{"x": 1.0, "y": 0.9, "z": 2.0}, {"x": -0.5, "y": 0.9, "z": 0.25}])
    np.testing.assert_allclose(points, [[2.0, -1.0], [0.25, 0.5]])
    assert md.reachable_xy(None).shape == (0, 2)


def _logged_arm() -> dict[str, Any]:
    return json.loads(POSE_FILE.read_text())["agent_full_pose"]["arm"]


def test_stretch_arm_is_read_like_safevlas_stretch_controller():
    arm = md.arm_pose(_logged_arm())
    assert arm.lift == pytest.approx(0.32747650146484375 - 0.16297650337219238)
    assert arm.extension == pytest.approx(-6.085634231567383e-05)
    assert arm.wrist_reading_deg == pytest.approx(180.0)  # fmod(w * y, 360) of wrist_2's rootRelativeRotation
    assert arm.wrist_thor_deg == pytest.approx(-180.0)  # on the arc 75 .. -260
    assert arm.wrist_yaw == pytest.approx(math.pi)
    assert arm.move_arm_position(lift=0.15) == pytest.approx(
        {"x": -7.193908095359802e-05, "y": 0.15, "z": -6.085634231567383e-05}
    )


def test_an_arm_that_is_not_the_stretch_is_rejected():
    arm = _logged_arm()
    arm["joints"][-1]["name"] = "robot_arm_4_jnt"
    with pytest.raises(ValueError, match="not a Stretch arm"):
        md.arm_pose(arm)


def test_robot_state_carries_the_stretch_joints_and_held_object(recording):
    event = copy.deepcopy(recording(MUG)["events"][0])
    event["arm"] = _logged_arm()
    event["arm"]["heldObjects"] = [MUG_ID]
    robot = md.robot_state(event)
    assert robot.lift == pytest.approx(0.1645)
    assert robot.wrist_yaw == pytest.approx(math.pi)
    assert robot.held_object_id == MUG_ID
