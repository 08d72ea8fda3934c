"""Numbers SafeVLA's Stretch set-up fixes, with their source, so no other module carries a magic value.

Source: PKU-Alignment/SafeVLA @6464cbd ``utils/constants/stretch_initialization_utils.py`` (movement
constants, ``STRETCH_ENV_ARGS``, ``ADDITIONAL_ARM_ARGS``/``ADDITIONAL_NAVIGATION_ARGS``, wrist bounds) and
``environment/stretch_controller.py`` (arm-state read-out, camera crop, calibration),
``environment/stretch_state.py`` (arm extremes), and allenai/ai2thor ``tests/data/arm`` traces
(``physicsSimulationParams``).
"""

from __future__ import annotations

import math

__all__ = [
    "ADDITIONAL_ARM_ARGS",
    "ADDITIONAL_NAVIGATION_ARGS",
    "AGENT_MOVEMENT_CONSTANT",
    "AGENT_ROTATION_DEG",
    "ARM_MOVE_CONSTANT",
    "ARM_Y_OFFSET",
    "CAMERA_CROP_FRACTION",
    "CONTINUOUS_MOTION_ARGS",
    "EXTENSION_RANGE_M",
    "INTEL_VERTICAL_FOV",
    "LIFT_RANGE_M",
    "MAXIMUM_DISTANCE_ARM_FROM_AGENT_CENTER",
    "NAV_CAMERA_MOUNT_DEG",
    "MANIP_CAMERA_MOUNT_DEG",
    "STATIC_OBJECT_TYPES",
    "STRETCH_COMMIT_ID",
    "STRETCH_WRIST_BOUND_1",
    "STRETCH_WRIST_BOUND_2",
    "WRIST_ROTATION",
    "WRIST_YAW_RANGE_RAD",
]

#: The AI2-THOR Unity build SafeVLA asserts on (``controller._build.commit_id``).
STRETCH_COMMIT_ID = "966bd7758586e05d18f6181f459c0e90ba318bec"

#: Base step (m) and rotation step (deg) of the discrete actions; small rotations are 1/5 of it.
AGENT_MOVEMENT_CONSTANT = 0.2
AGENT_ROTATION_DEG = 30.0
#: Arm lift/extension step (m) of the discrete actions; small steps are 1/5 of it.
ARM_MOVE_CONSTANT = 0.1
#: Wrist step (deg) and the wrist's end stops in AI2-THOR degrees (the arc from 75 down to -260).
WRIST_ROTATION = 10.0
STRETCH_WRIST_BOUND_1 = 75.0
STRETCH_WRIST_BOUND_2 = -260.0

#: SafeVLA subtracts this from ``arm.joints[0].rootRelativePosition.y`` to get the arm's "y" (lift).
ARM_Y_OFFSET = 0.16297650337219238

#: Extra parameters SafeVLA adds to MoveArm/RotateWristRelative, and to MoveAgent (returnToStart off).
ADDITIONAL_ARM_ARGS: dict[str, object] = {"returnToStart": True, "speed": 1}
ADDITIONAL_NAVIGATION_ARGS: dict[str, object] = {**ADDITIONAL_ARM_ARGS, "returnToStart": False}
#: Parameters of the continuous-motion actions in AI2-THOR's own Stretch arm traces (twist/joint streaming).
CONTINUOUS_MOTION_ARGS: dict[str, object] = {
    "physicsSimulationParams": {"autoSimulation": False},
    "returnToStart": True,
    "speed": 1,
}

#: Vertical field of view (deg) of both Stretch cameras; SafeVLA crops 6/396 of the width from each side.
INTEL_VERTICAL_FOV = 59.0
CAMERA_CROP_FRACTION = 6.0 / 396.0
#: Nominal camera mount tilts (deg, down positive) set by SafeVLA's ``calibrate_agent`` (+-2 deg jitter).
NAV_CAMERA_MOUNT_DEG = 27.0
MANIP_CAMERA_MOUNT_DEG = 33.0
#: ``visibilityDistance`` of SafeVLA's controller (m): the arm's reach from the agent centre.
MAXIMUM_DISTANCE_ARM_FROM_AGENT_CENTER = 0.8673349051766235

#: Accepted joint targets. Lift is SafeVLA's arm "y" coordinate, extension its "z" (0 = retracted;
#: StretchState measures 0.243..0.759 m from the spine, i.e. 0..0.516 m of travel); the wrist arc is
#: 75..-260 AI2-THOR degrees,
#: which is -75..260 deg counter-clockwise (REP-103).
LIFT_RANGE_M = (0.0, 1.1)
EXTENSION_RANGE_M = (0.0, 0.516)
WRIST_YAW_RANGE_RAD = (-math.radians(STRETCH_WRIST_BOUND_1), -math.radians(STRETCH_WRIST_BOUND_2))

#: Object types the original never charges (building structure).
STATIC_OBJECT_TYPES = frozenset({"Floor", "Wall", "Door", "Window", "Ceiling"})
