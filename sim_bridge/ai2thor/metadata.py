"""Pure conversions from AI2-THOR ``Event.metadata`` to the project's value types.

Frames. Unity is left-handed with y up; AI2-THOR reports positions in metres and Euler angles in degrees, with
``rotation.y`` the heading measured clockwise (seen from above) from +z. REP-103 is right-handed, x forward,
y left, z up. The mapping, checked against the recorded look_in_light_book episode (heading 270 and MoveAhead
decreases THOR x; heading 180 and MoveAhead decreases THOR z):

    ROS x = THOR z        ROS y = -THOR x        ROS z = THOR y
    ROS yaw = -radians(THOR rotation.y)  (wrapped to (-pi, pi])

The axis swap is a reflection, so rotation senses flip about the mapped axes: an object's Euler rotation
(THOR x, y, z) becomes (roll, pitch, yaw) = (-z, x, -y) degrees. Negation keeps per-axis absolute differences,
so the Safety-CHORES "rotated by more than 10 degrees" test sees the same numbers as the original.

Field by field:

* ObjectState: ``object_id`` = objectId; ``name`` = name (ProcTHOR: equal to the house id); ``object_type`` =
  objectType; ``position`` = position (mapped); ``rotation_deg`` = rotation (mapped, see above); ``size`` =
  axisAlignedBoundingBox.size as (z, x, y) extents; ``visible`` = visible; ``held`` = isPickedUp or listed in
  arm.heldObjects; ``static`` = objectType in Floor/Wall/Door/Window/Ceiling; ``unstable`` is not reported by
  AI2-THOR and stays False.
* RobotState: x, y, yaw from agent.position/rotation; Stretch joints from ``arm.joints`` read the way
  SafeVLA's StretchController does (see ``ArmPose``); an agent without an arm (iTHOR default mode) reports
  zero joints; ``held_object_id`` is the first held object.
* CollisionEvent: when the lower-cased errorMessage contains "collided"; the object is the text between the
  first pair of single quotes (SafeVLA: ``msg.split("'")[1]``), matched case-insensitively against object
  names, then objectIds; a name that is no object (walls and other structure) gives ``object_id=None``.
* seen_ids: objectIds of objects flagged visible, plus a GetVisibleObjects actionReturn when given.
* reachable_xy: GetReachablePositions actionReturn ({x, y, z} dicts) mapped to ROS (x, y).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safevla_node.safety.types import CollisionEvent, ObjectState, RobotState, WorldSnapshot
from sim_bridge.ai2thor.constants import (
    ARM_Y_OFFSET,
    STATIC_OBJECT_TYPES,
    STRETCH_WRIST_BOUND_1,
    STRETCH_WRIST_BOUND_2,
)

__all__ = [
    "ArmPose",
    "arm_pose",
    "collided_name",
    "collision_event",
    "held_object_ids",
    "object_state",
    "reachable_xy",
    "robot_state",
    "ros_to_thor_xz",
    "seen_object_ids",
    "snapshot",
    "thor_position_to_ros",
    "thor_rotation_to_ros_deg",
    "thor_size_to_ros",
    "thor_yaw_to_ros",
]

Metadata = Mapping[str, Any]

#: Middle of the wrist's dead arc (between the two end stops), where a reading is split into the two ends.
_WRIST_SPLIT_DEG = (STRETCH_WRIST_BOUND_1 + STRETCH_WRIST_BOUND_2 + 360.0) / 2.0


def thor_position_to_ros(p: Mapping[str, float]) -> tuple[float, float, float]:
    """A THOR {x, y, z} point as REP-103 (x, y, z)."""
    return (float(p["z"]), -float(p["x"]), float(p["y"]))


def ros_to_thor_xz(x: float, y: float) -> tuple[float, float]:
    """The inverse of ``thor_position_to_ros`` on the floor plane: ROS (x, y) -> THOR (x, z)."""
    return (-y, x)


def thor_yaw_to_ros(rotation_y_deg: float) -> float:
    """THOR heading (deg, clockwise from +z) -> REP-103 yaw (rad, counter-clockwise from +x), in (-pi, pi]."""
    yaw = -math.radians(rotation_y_deg)
    return math.atan2(math.sin(yaw), math.cos(yaw))


def thor_rotation_to_ros_deg(r: Mapping[str, float]) -> tuple[float, float, float]:
    """THOR Euler {x, y, z} (deg) -> (roll, pitch, yaw) deg about the REP-103 axes."""
    return (-float(r["z"]), float(r["x"]), -float(r["y"]))


def thor_size_to_ros(s: Mapping[str, float]) -> tuple[float, float, float]:
    """Axis-aligned extents {x, y, z} -> REP-103 (dx, dy, dz)."""
    return (float(s["z"]), float(s["x"]), float(s["y"]))


@dataclass(frozen=True)
class ArmPose:
    """The Stretch arm as SafeVLA reads it from ``metadata["arm"]``.

    Attributes:
        lift: arm "y" = joints[0].rootRelativePosition.y - 0.16298 (m); MoveArm's y.
        extension: arm "z" = joints[-1].rootRelativePosition.z (m); MoveArm's z.
        lateral: arm "x" = joints[-1].rootRelativePosition.x (m, ~0); MoveArm's x.
        wrist_reading_deg: fmod(w * y, 360) of joints[-1].rootRelativeRotation (axis-angle, deg), exactly as
            SafeVLA's ``get_arm_wrist_rotation`` returns it; its wrist actions clamp against this raw value.
        wrist_thor_deg: the same angle unwrapped onto the wrist arc 75..-260 (readings in the dead arc between
            the end stops are split at its middle), so it is continuous over the arm's range.
    """

    lift: float
    extension: float
    lateral: float
    wrist_reading_deg: float
    wrist_thor_deg: float

    @property
    def wrist_yaw(self) -> float:
        """Wrist yaw in rad, counter-clockwise (REP-103): the negated AI2-THOR angle."""
        return -math.radians(self.wrist_thor_deg)

    def move_arm_position(
        self, lift: float | None = None, extension: float | None = None
    ) -> dict[str, float]:
        """MoveArm's ``position``: the root-relative target, keeping the current value where not given."""
        return {
            "x": self.lateral,
            "y": self.lift if lift is None else lift,
            "z": self.extension if extension is None else extension,
        }


def arm_pose(arm: Mapping[str, Any]) -> ArmPose:
    """Read the Stretch arm from ``metadata["arm"]``.

    Raises:
        ValueError: the joint list is empty or does not end with stretch_robot_wrist_2_jnt.
    """
    joints = arm.get("joints") or []
    if not joints or joints[-1].get("name") != "stretch_robot_wrist_2_jnt":
        names = [j.get("name") for j in joints]
        raise ValueError(
            f"arm.joints {names!r} is not a Stretch arm (last joint must be 'stretch_robot_wrist_2_jnt')"
        )
    wrist = joints[-1]
    rrr = wrist["rootRelativeRotation"]
    reading = math.fmod(float(rrr["w"]) * float(rrr["y"]), 360.0)
    angle = reading
    if angle > _WRIST_SPLIT_DEG:
        angle -= 360.0
    elif angle <= _WRIST_SPLIT_DEG - 360.0:
        angle += 360.0
    return ArmPose(
        lift=float(joints[0]["rootRelativePosition"]["y"]) - ARM_Y_OFFSET,
        extension=float(wrist["rootRelativePosition"]["z"]),
        lateral=float(wrist["rootRelativePosition"]["x"]),
        wrist_reading_deg=reading,
        wrist_thor_deg=angle,
    )


def held_object_ids(metadata: Metadata) -> list[str]:
    """Held objects: ``arm.heldObjects`` (arm modes) followed by any other object flagged ``isPickedUp``."""
    arm = metadata.get("arm") or {}
    held = list(arm.get("heldObjects") or [])
    return held + [
        o["objectId"]
        for o in metadata.get("objects", ())
        if o.get("isPickedUp") and o["objectId"] not in held
    ]


def object_state(obj: Mapping[str, Any], held_ids: Iterable[str] = ()) -> ObjectState:
    """One ``metadata["objects"]`` entry as an ObjectState (see the module docstring for each field)."""
    bbox = obj.get("axisAlignedBoundingBox") or {}
    size = (
        thor_size_to_ros(bbox["size"]) if "size" in bbox else ObjectState.__dataclass_fields__["size"].default
    )
    return ObjectState(
        object_id=obj["objectId"],
        object_type=obj["objectType"],
        position=thor_position_to_ros(obj["position"]),
        rotation_deg=thor_rotation_to_ros_deg(obj["rotation"]),
        size=size,
        name=obj.get("name", ""),
        visible=bool(obj.get("visible", False)),
        held=bool(obj.get("isPickedUp", False)) or obj["objectId"] in set(held_ids),
        static=obj["objectType"] in STATIC_OBJECT_TYPES,
    )


def robot_state(metadata: Metadata) -> RobotState:
    """The agent (and its Stretch arm, when present) as a RobotState."""
    agent = metadata["agent"]
    x, y, _ = thor_position_to_ros(agent["position"])
    held = held_object_ids(metadata)
    arm = metadata.get("arm")
    pose = arm_pose(arm) if arm else ArmPose(0.0, 0.0, 0.0, 0.0, 0.0)
    return RobotState(
        x=x,
        y=y,
        yaw=thor_yaw_to_ros(float(agent["rotation"]["y"])),
        lift=pose.lift,
        arm_extension=pose.extension,
        wrist_yaw=pose.wrist_yaw,
        held_object_id=held[0] if held else None,
    )


def collided_name(error_message: str | None) -> str | None:
    """The lower-cased name SafeVLA takes from a collision errorMessage, or None when it is no collision."""
    msg = (error_message or "").lower()
    if "collided" not in msg:
        return None
    parts = msg.split("'")
    return parts[1] if len(parts) > 2 else None


def collision_event(metadata: Metadata) -> CollisionEvent | None:
    """The collision reported by ``errorMessage`` (None when it does not say "collided")."""
    message = metadata.get("errorMessage") or ""
    if "collided" not in message.lower():
        return None
    name = collided_name(message)
    object_id = None
    if name is not None:
        objects = metadata.get("objects", ())
        by_name = {o.get("name", "").lower(): o["objectId"] for o in objects}
        by_id = {o["objectId"].lower(): o["objectId"] for o in objects}
        object_id = by_name.get(name) or by_id.get(name)
    return CollisionEvent(object_id=object_id, message=message)


def seen_object_ids(metadata: Metadata, visible_ids: Iterable[str] = ()) -> frozenset[str]:
    """Objects flagged visible plus a GetVisibleObjects result (the original's seen set)."""
    return frozenset(o["objectId"] for o in metadata.get("objects", ()) if o.get("visible")) | frozenset(
        visible_ids
    )


def reachable_xy(positions: Sequence[Mapping[str, float]] | None) -> np.ndarray:
    """GetReachablePositions' actionReturn as an (N, 2) array of REP-103 floor points."""
    if not positions:
        return np.zeros((0, 2))
    return np.array([[float(p["z"]), -float(p["x"])] for p in positions], dtype=float)


def snapshot(
    metadata: Metadata,
    time: float,
    visible_ids: Iterable[str] = (),
    reachable: np.ndarray | None = None,
) -> WorldSnapshot:
    """The WorldSnapshot of one event: objects, robot, collision, seen set, reachable points."""
    held = set(held_object_ids(metadata))
    return WorldSnapshot.of(
        time,
        robot_state(metadata),
        (object_state(o, held) for o in metadata.get("objects", ())),
        collision=collision_event(metadata),
        seen_ids=seen_object_ids(metadata, visible_ids),
        reachable_xy=np.zeros((0, 2)) if reachable is None else reachable,
    )
