"""The SafeVLA discrete action vocabulary, in the actor head's index order.

The order is ALL_STRETCH_ACTIONS of the original (utils/constants/stretch_initialization_utils.py),
confirmed by the golden forward pass: index i of the 20 actor logits is ``ACTIONS[i]``.
Each action carries its nominal kinematic effect in SI units so the shield can predict it and the
monitor can expand it into a closed-loop motion primitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ACTIONS",
    "ACTION_BY_CODE",
    "NUM_ACTIONS",
    "START_TOKEN",
    "Action",
    "ActionKind",
    "action_by_code",
]


class ActionKind(str, Enum):
    """What part of the robot an action moves."""

    BASE = "base"
    ARM = "arm"
    GRIPPER = "gripper"
    EPISODE = "episode"  # end / sub_done: no motion


@dataclass(frozen=True)
class Action:
    """One discrete SafeVLA action and its nominal effect.

    Attributes:
        index: position in the actor head's logits.
        code: the original's short name ("m", "r", ...).
        name: a readable name.
        kind: which subsystem moves.
        forward_m: base translation along +x of base_link (m).
        yaw_rad: base rotation, counter-clockwise positive (rad, REP-103).
        lift_m: change of the lift height (m).
        extension_m: change of the telescoping arm extension (m).
        wrist_yaw_rad: change of the wrist yaw (rad).
    """

    index: int
    code: str
    name: str
    kind: ActionKind
    forward_m: float = 0.0
    yaw_rad: float = 0.0
    lift_m: float = 0.0
    extension_m: float = 0.0
    wrist_yaw_rad: float = 0.0

    @property
    def moves(self) -> bool:
        """True if executing the action moves the robot (pickup/dropoff/end do not)."""
        return any((self.forward_m, self.yaw_rad, self.lift_m, self.extension_m, self.wrist_yaw_rad))


_DEG = math.pi / 180.0

ACTIONS: tuple[Action, ...] = (
    Action(0, "m", "move_ahead", ActionKind.BASE, forward_m=0.2),
    Action(1, "r", "rotate_right", ActionKind.BASE, yaw_rad=-30 * _DEG),
    Action(2, "l", "rotate_left", ActionKind.BASE, yaw_rad=30 * _DEG),
    Action(3, "b", "move_back", ActionKind.BASE, forward_m=-0.2),
    Action(4, "end", "end", ActionKind.EPISODE),
    Action(5, "sub_done", "sub_done", ActionKind.EPISODE),
    Action(6, "ls", "rotate_left_small", ActionKind.BASE, yaw_rad=6 * _DEG),
    Action(7, "rs", "rotate_right_small", ActionKind.BASE, yaw_rad=-6 * _DEG),
    Action(8, "p", "pickup", ActionKind.GRIPPER),
    Action(9, "zm", "arm_in", ActionKind.ARM, extension_m=-0.1),
    Action(10, "zp", "arm_out", ActionKind.ARM, extension_m=0.1),
    Action(11, "yp", "arm_up", ActionKind.ARM, lift_m=0.1),
    Action(12, "ym", "arm_down", ActionKind.ARM, lift_m=-0.1),
    Action(13, "wp", "wrist_plus", ActionKind.ARM, wrist_yaw_rad=10 * _DEG),
    Action(14, "wm", "wrist_minus", ActionKind.ARM, wrist_yaw_rad=-10 * _DEG),
    Action(15, "yms", "arm_down_small", ActionKind.ARM, lift_m=-0.02),
    Action(16, "zms", "arm_in_small", ActionKind.ARM, extension_m=-0.02),
    Action(17, "zps", "arm_out_small", ActionKind.ARM, extension_m=0.02),
    Action(18, "yps", "arm_up_small", ActionKind.ARM, lift_m=0.02),
    Action(19, "d", "dropoff", ActionKind.GRIPPER),
)

NUM_ACTIONS = len(ACTIONS)
#: Previous-action index fed to the model at the first step of an episode.
START_TOKEN = NUM_ACTIONS
ACTION_BY_CODE = {a.code: a for a in ACTIONS}


def action_by_code(code: str) -> Action:
    """Look an action up by its short code.

    Raises:
        KeyError: naming the valid codes.
    """
    try:
        return ACTION_BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown action code {code!r}; valid codes: {sorted(ACTION_BY_CODE)}") from None
