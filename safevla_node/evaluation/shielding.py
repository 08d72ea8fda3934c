"""The shield in the loop of an evaluated episode: world estimate from an observation, and one decision rule.

``shielded_action`` is the single place that turns a policy's proposal and the shield's verdict into what
is executed; the in-process executor uses it, and the through-ROS parity test
(``tests/evaluation/test_through_ros_parity.py``) checks that the safety monitor decides the same. Discrete
actions are judged whole, so a LIMIT verdict (a scaled speed) cannot shorten one: it executes unchanged and is
only counted.

``ShieldWorld`` builds the ``WorldEstimate`` the way the robot would: the robot state (pose from odometry,
joints), obstacle points from the lidar scan accumulated in an ``ObstacleMemory`` in odom (so obstacles
that left the field of view are remembered, for the blind-spot rule), and the labelled objects, furniture
included (flagged static).
The simulator has no perception stack, so labels come from the privileged snapshot, as the bridge's
``safevla/objects`` topic provides them; the task's target id is given at ``reset``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from safevla_node.safety.obstacle_memory import ObstacleMemory, ObstacleMemoryConfig
from safevla_node.safety.shield import Shield
from safevla_node.safety.types import DiscreteCommand, Verdict, VerdictKind, WorldEstimate
from sim_bridge.interface import Observation

__all__ = ["EVALUATION_MEMORY", "ShieldDecision", "ShieldWorld", "shielded_action"]

#: The obstacle memory of an evaluated episode, in-process and in the through-ROS monitor alike: cells are
#: not forgotten with age (they are still cleared by beams passing through them and dropped beyond
#: ``radius_m``). A decay counts sim time, and through ROS the sim clock also runs while the monitor and the
#: policy think, a wait that grows with the machine's load: a decay would make the shield's world, and so the
#: results, depend on the load. An episode is short and its home static, so nothing needs forgetting. (The
#: robot's monitor keeps its configured decay: there the clock is the world's.)
EVALUATION_MEMORY = ObstacleMemoryConfig(decay_s=1e9)


@dataclass(frozen=True)
class ShieldDecision:
    """What happens to one proposed action.

    Attributes:
        proposed: the policy's action index.
        executed: the action index to execute, or None when the step is spent standing still (STOP).
        verdict: the shield's verdict on the proposal.
    """

    proposed: int
    executed: int | None
    verdict: Verdict


def shielded_action(
    shield: Shield, world: WorldEstimate, action_index: int, probabilities: Sequence[float] | None
) -> ShieldDecision:
    """Judge ``action_index`` in ``world``: ALLOW/LIMIT execute it, REPLACE the replacement, STOP nothing."""
    probs = None if probabilities is None else tuple(float(p) for p in probabilities)
    verdict = shield.check(world, DiscreteCommand(action_index, probs))
    if verdict.kind is VerdictKind.REPLACE:
        executed: int | None = verdict.replacement
    elif verdict.kind is VerdictKind.STOP:
        executed = None
    else:
        executed = action_index
    return ShieldDecision(action_index, executed, verdict)


class ShieldWorld:
    """Accumulates observations of one episode into the shield's ``WorldEstimate``."""

    def __init__(self, memory_config: ObstacleMemoryConfig = EVALUATION_MEMORY) -> None:
        self._memory = ObstacleMemory(memory_config)
        self._target: str | None = None

    def reset(self, target_object_id: str | None = None) -> None:
        """Forget the previous episode's obstacles; ``target_object_id`` is the new task's target (None: no
        target, e.g. an infeasible task), handed to the shield in every estimate."""
        self._memory.clear()
        self._target = target_object_id

    def update(self, observation: Observation) -> WorldEstimate:
        """Add the observation's scan (taken at the base pose, lidar at base_link) and return the estimate."""
        robot = observation.snapshot.robot
        scan = observation.scan
        self._memory.add_scan(
            observation.time, robot, scan.ranges, scan.angle_min, scan.angle_increment, scan.range_min,
            scan.range_max,
        )
        obstacle_xy, visible = self._memory.snapshot(observation.time)
        # Furniture included (flagged static), as safevla/objects publishes it: its boxes explain the lidar
        # points of table legs under the arm, and static objects never join a fragile group.
        objects = tuple(observation.snapshot.objects.values())
        return WorldEstimate(robot=robot, obstacle_xy=obstacle_xy, obstacle_visible=visible, objects=objects,
                             target_object_id=self._target)
