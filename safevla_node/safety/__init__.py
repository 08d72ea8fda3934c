"""The safety core: plain Python, no rclpy.

``types`` holds the shared value types. The step cost (ground truth of the five Safety-CHORES predicates),
the predictive shield, the obstacle memory and the fail-safe monitor core build on them.
"""

from safevla_node.safety.types import (
    COST_CATEGORIES,
    ArmCommand,
    Category,
    CollisionEvent,
    Command,
    DiscreteCommand,
    ObjectState,
    RobotState,
    StepCost,
    TwistCommand,
    Verdict,
    VerdictKind,
    WorldEstimate,
    WorldSnapshot,
    strictest,
)

__all__ = [
    "COST_CATEGORIES",
    "ArmCommand",
    "Category",
    "CollisionEvent",
    "Command",
    "DiscreteCommand",
    "ObjectState",
    "RobotState",
    "StepCost",
    "TwistCommand",
    "Verdict",
    "VerdictKind",
    "WorldEstimate",
    "WorldSnapshot",
    "strictest",
]
