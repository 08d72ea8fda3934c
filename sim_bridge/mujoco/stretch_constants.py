"""Names, dimensions and limits of our Stretch-class robot model (Hello Robot Stretch 2/3 figures).

Every MJCF name the backend uses is defined here once and resolved to an id once per model (``RobotIds``).
"""

from __future__ import annotations

import math

__all__ = [
    "ARM_LENGTH_RETRACTED",
    "BASE_HALF",
    "CAMERA_FOVY_DEG",
    "FOOTPRINT_RADIUS",
    "GRASP_RADIUS",
    "JOINT_LIMITS",
    "LIDAR_HEIGHT",
    "LIFT_ZERO_Z",
    "MAST_XY",
    "STOW",
]

# --- MJCF names ------------------------------------------------------------------------------------------
BASE_BODY = "base_link"
BASE_X_JOINT = "base_x"
BASE_Y_JOINT = "base_y"
BASE_YAW_JOINT = "base_yaw"
BASE_X_ACT = "base_vx"
BASE_Y_ACT = "base_vy"
BASE_YAW_ACT = "base_wz"
LIFT_BODY = "lift_carriage"
ARM_BODY = "arm_extension"
WRIST_BODY = "wrist"
GRIPPER_BODY = "gripper"
LEFT_FINGER_JOINT = "gripper_finger_left"
RIGHT_FINGER_JOINT = "gripper_finger_right"
GRASP_SITE = "grasp_center"
LIDAR_SITE = "lidar"
NAV_CAMERA = "nav_camera"
MANIP_CAMERA = "manip_camera"
FLOOR_GEOM = "floor"

#: Position-controlled joints by interface name (``sim_bridge.interface.JOINT_NAMES``) -> MJCF joints, each
#: with a position actuator of the same name. The gripper aperture drives both fingers (half of it each).
JOINT_ACTUATORS: dict[str, tuple[str, ...]] = {
    "joint_lift": ("joint_lift",),
    "wrist_extension": ("wrist_extension",),
    "joint_wrist_yaw": ("joint_wrist_yaw",),
    "gripper_aperture": (LEFT_FINGER_JOINT, RIGHT_FINGER_JOINT),
    "joint_head_pan": ("joint_head_pan",),
    "joint_head_tilt": ("joint_head_tilt",),
}

# --- Geometry (m) -----------------------------------------------------------------------------------------
#: Half extents of the base box: 0.34 m long, 0.33 m wide.
BASE_HALF = (0.17, 0.165, 0.09)
#: Circle enclosing the base, used for reachability and planning.
FOOTPRINT_RADIUS = math.hypot(BASE_HALF[0], BASE_HALF[1])
#: Mast position in base_link; the arm carriage rides on it and the head sits on top.
MAST_XY = (-0.07, 0.09)
MAST_HEIGHT = 1.1
BASE_TOP = 0.19
#: Height of the arm above the floor when joint_lift is 0 (lift values are carriage travel, like Stretch's).
LIFT_ZERO_Z = 0.2
#: Length from the mast centre to the wrist with the arm retracted; extension adds to it towards -y.
#: Retracted, the gripper stays within the footprint circle, so planning on the footprint is safe.
ARM_LENGTH_RETRACTED = 0.3
#: The gripper's grasp point hangs this far below the arm.
GRASP_DROP = 0.15
#: Sideways offset (along -y) of the grasp point from the wrist axis.
GRASP_OFFSET = 0.03
#: An object is grasped when its bounding box is within this distance of the grasp point.
GRASP_RADIUS = 0.06
LIDAR_HEIGHT = 0.2
HEAD_Z = 1.3

# --- Joint limits (interface units) -----------------------------------------------------------------------
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "joint_lift": (0.0, 1.1),
    "wrist_extension": (0.0, 0.52),
    "joint_wrist_yaw": (math.radians(-260.0), math.radians(75.0)),
    "gripper_aperture": (0.0, 0.14),
    "joint_head_pan": (-4.04, 1.73),
    "joint_head_tilt": (-1.53, 0.79),
}
#: Joint targets at reset: arm stowed above table height, gripper open, head looking down-forward.
STOW: dict[str, float] = {
    "joint_lift": 0.75,
    "wrist_extension": 0.0,
    "joint_wrist_yaw": 0.0,
    "gripper_aperture": 0.1,
    "joint_head_pan": 0.0,
    "joint_head_tilt": -0.45,
}

# --- Cameras ----------------------------------------------------------------------------------------------
CAMERA_FOVY_DEG = 59.0
DEFAULT_CAMERA_SIZE = (396, 224)  # (width, height), AI2-THOR's Stretch frame

# --- Base limits (Stretch: ~0.3 m/s, ~1 rad/s in navigation mode) -----------------------------------------
MAX_LINEAR = 0.4
MAX_ANGULAR = 1.2

# --- Collision bitmasks -----------------------------------------------------------------------------------
WORLD_BIT = 1
ROBOT_BIT = 2
ITEM_BIT = 4
HELD_BIT = 8
#: Geom groups: 0 static world, 1 items, 3 robot (rays for lidar/visibility use groups 0-2 only).
ROBOT_GROUP = 3
