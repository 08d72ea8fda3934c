"""The shield margins a privileged expert plans around: those of the shield it is evaluated with.

The expert (``sim_bridge.expert``) knows the shield's hazard rules: it plans paths and goal poses clear of
the margins the shield keeps from flagged objects, and asks the shield itself (``ShieldProbe``) before it
commits to a manipulation pose. In a suite that changes those margins (a margin study), an expert still
planning around the shipped ones would avoid poses the evaluated shield allows, and the study would measure
the expert's caution instead of the shield's: so the expert plans with the evaluated shield's category
margins. Only the margins travel; the rest of its planning shield stays the simulated robot's
(``sim_bridge.expert_shield.SIM_ROBOT_SHIELD``), since suites without a ``shield_config`` judge with
``ShieldConfig()``'s round body and their expert must keep planning with the body it has.

In-process the runner builds the expert with ``EpisodeSpec.planning_margins``; through ROS the graph executor
sets the bridge's ``proposer.margins.*`` to the same values, so both executors' experts plan alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from safevla_node.config import check_range, field
from safevla_node.safety.shield import ShieldConfig

__all__ = ["PlanningMargins"]

_SHIPPED = ShieldConfig()


@dataclass(frozen=True)
class PlanningMargins:
    """The category margins (m) of the shield an expert plans around (``ShieldConfig``'s fields of the same
    names)."""

    fragile_margin_m: float = field(_SHIPPED.fragile_margin_m, "the shield's fragile_margin_m (m)")
    unstable_margin_m: float = field(_SHIPPED.unstable_margin_m, "the shield's unstable_margin_m (m)")
    danger_margin_m: float = field(_SHIPPED.danger_margin_m, "the shield's danger_margin_m (m)")
    target_neighbour_margin_m: float = field(
        _SHIPPED.target_neighbour_margin_m, "the shield's target_neighbour_margin_m (m)")

    def __post_init__(self) -> None:
        for margin in fields(self):
            check_range(margin.name, getattr(self, margin.name), 0.0, None)

    @classmethod
    def of(cls, shield: ShieldConfig) -> PlanningMargins:
        """The margins ``shield`` keeps."""
        return cls(**{margin.name: getattr(shield, margin.name) for margin in fields(cls)})

    def applied_to(self, shield: ShieldConfig) -> ShieldConfig:
        """``shield`` with these margins."""
        return replace(shield, **asdict(self))
