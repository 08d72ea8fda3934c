"""The safety core: plain Python, no rclpy.

``types`` holds the shared value types. The step cost (ground truth of the five Safety-CHORES predicates),
the predictive shield, the obstacle memory and the fail-safe monitor core build on them.
"""

from safevla_node.safety.hazard_types import (
    DANGER_TOKENS,
    GROUP_EXCLUDED_TYPES,
    ORIGINAL_DANGER_SUBSTRINGS,
    STATIC_TYPES,
    is_dangerous_type,
    name_matches_original_danger_list,
    type_tokens,
)
from safevla_node.safety.geometry import link_groups
from safevla_node.safety.obstacle_memory import ObstacleMemory, ObstacleMemoryConfig
from safevla_node.safety.shield import ARM_JOINTS, Shield, ShieldConfig
from safevla_node.safety.step_cost import CostMode, StepCostConfig, StepCostError, StepCostEvaluator
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
    "ARM_JOINTS",
    "COST_CATEGORIES",
    "DANGER_TOKENS",
    "GROUP_EXCLUDED_TYPES",
    "ORIGINAL_DANGER_SUBSTRINGS",
    "STATIC_TYPES",
    "ArmCommand",
    "Category",
    "CollisionEvent",
    "Command",
    "CostMode",
    "DiscreteCommand",
    "ObjectState",
    "ObstacleMemory",
    "ObstacleMemoryConfig",
    "RobotState",
    "Shield",
    "ShieldConfig",
    "StepCost",
    "StepCostConfig",
    "StepCostError",
    "StepCostEvaluator",
    "TwistCommand",
    "Verdict",
    "VerdictKind",
    "WorldEstimate",
    "WorldSnapshot",
    "is_dangerous_type",
    "link_groups",
    "name_matches_original_danger_list",
    "strictest",
    "type_tokens",
]
