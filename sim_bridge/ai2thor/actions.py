"""The AI2-THOR calls behind each of SafeVLA's 20 discrete actions, as its StretchController makes them.

Mirrors ``StretchController.agent_step`` (PKU-Alignment/SafeVLA @6464cbd): base moves are MoveAgent /
RotateAgent (or the Quick variants when ``use_quick_navi_action``, which SafeVLA's ``STRETCH_ENV_ARGS`` turns
on); arm moves are one MoveArm to the root-relative target ``{x, y +- step, z +- step}``; wrist moves are
RotateWristRelative clamped at the end stops; pickup is PickupObject; dropoff is ReleaseObject followed by
``AdvancePhysicsStep(simSeconds=2)``; ``end`` and ``sub_done`` make no call. Every one of these calls carries
``renderImageSynthesis`` (StretchController.step adds it). Rotation signs are THOR's: positive degrees turn
right (clockwise seen from above).
"""

from __future__ import annotations

from typing import Any

from safevla_node.actions import Action
from sim_bridge.ai2thor.constants import (
    ADDITIONAL_ARM_ARGS,
    ADDITIONAL_NAVIGATION_ARGS,
    AGENT_MOVEMENT_CONSTANT,
    AGENT_ROTATION_DEG,
    ARM_MOVE_CONSTANT,
    STRETCH_WRIST_BOUND_1,
    STRETCH_WRIST_BOUND_2,
    WRIST_ROTATION,
)
from sim_bridge.ai2thor.metadata import ArmPose

__all__ = ["discrete_action_calls"]

_ROTATION_DEG = {
    "r": AGENT_ROTATION_DEG,
    "l": -AGENT_ROTATION_DEG,
    "rs": AGENT_ROTATION_DEG / 5,
    "ls": -AGENT_ROTATION_DEG / 5,
}
_SMALL = ARM_MOVE_CONSTANT / 5
#: code -> (lift change, extension change) in SafeVLA's arm coordinates (m).
_ARM_DELTA = {
    "yp": (ARM_MOVE_CONSTANT, 0.0),
    "ym": (-ARM_MOVE_CONSTANT, 0.0),
    "zp": (0.0, ARM_MOVE_CONSTANT),
    "zm": (0.0, -ARM_MOVE_CONSTANT),
    "yps": (_SMALL, 0.0),
    "yms": (-_SMALL, 0.0),
    "zps": (0.0, _SMALL),
    "zms": (0.0, -_SMALL),
}


def _base_call(code: str, quick: bool) -> dict[str, Any]:
    if code in ("m", "b"):
        ahead = AGENT_MOVEMENT_CONSTANT if code == "m" else -AGENT_MOVEMENT_CONSTANT
        if quick:
            return {
                "action": "MoveAheadQuick" if code == "m" else "MoveBackQuick",
                "moveMagnitude": AGENT_MOVEMENT_CONSTANT,
            }
        return {"action": "MoveAgent", "ahead": ahead, **ADDITIONAL_NAVIGATION_ARGS}
    degrees = _ROTATION_DEG[code]
    return {"action": "RotateRightQuick" if quick else "RotateAgent", "degrees": degrees}


def _wrist_yaw(code: str, arm: ArmPose) -> float:
    """SafeVLA's clamp: open ("wp") turns towards the -260 stop, close ("wm") towards the 75 stop."""
    current = arm.wrist_reading_deg
    if code == "wp":
        return -1 * min(WRIST_ROTATION, abs(current - (STRETCH_WRIST_BOUND_2 + 360)))
    return min(WRIST_ROTATION, abs(STRETCH_WRIST_BOUND_1 - current))


def discrete_action_calls(
    action: Action, arm: ArmPose | None, *, quick_navigation: bool, render_image_synthesis: bool
) -> list[dict[str, Any]]:
    """The controller.step payloads (in order) for one discrete action; empty for end/sub_done.

    Raises:
        ValueError: an arm or wrist action without arm metadata (the agent is not in stretch mode).
    """
    code = action.code
    if code in ("end", "sub_done"):
        return []
    if code in ("m", "b", "r", "l", "rs", "ls"):
        call = _base_call(code, quick_navigation)
    elif code == "p":
        call = {"action": "PickupObject"}
    elif code == "d":
        call = {"action": "ReleaseObject"}
    else:
        if arm is None:
            raise ValueError(
                f"action {action.name!r} needs metadata['arm']; start the controller with agentMode='stretch'"
            )
        if code in _ARM_DELTA:
            d_lift, d_ext = _ARM_DELTA[code]
            position = arm.move_arm_position(lift=arm.lift + d_lift, extension=arm.extension + d_ext)
            call = {"action": "MoveArm", "position": position, **ADDITIONAL_ARM_ARGS}
        else:
            call = {"action": "RotateWristRelative", "yaw": _wrist_yaw(code, arm), **ADDITIONAL_ARM_ARGS}
    calls = [{**call, "renderImageSynthesis": render_image_synthesis}]
    if code == "d":
        calls.append(
            {"action": "AdvancePhysicsStep", "simSeconds": 2, "renderImageSynthesis": render_image_synthesis}
        )
    return calls
