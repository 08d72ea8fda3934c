"""``safevla explain``: why one episode of a suite went as it did with the shield on, and what it cost.

An episode record says how often the shield limited, replaced or stopped the policy, not why. This runs the
episode again in-process (seeded, so it is the episode an in-process ``safevla eval`` recorded; a
``--through-ros`` record can differ in small ways, docs/through_ros_parity.md) and prints every decision that
was not a plain ALLOW, at the step and robot pose it was made, and every step that cost something with the
simulator's reasons (shield on or off), then the decisions grouped by verdict and rule: which margin of which
object kept the robot from its goal.

Exit status: 0 the episode ran (whatever its outcome), 2 a usage error (unknown suite file or episode key).
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections import Counter
from pathlib import Path

from safevla_node.actions import ACTIONS
from safevla_node.cli import add_subcommand
from safevla_node.errors import ConfigError

__all__ = ["HELP", "configure", "run"]

HELP = ("replay one episode of a suite in-process and print the shield's decisions (why it refused what) and "
        "the costly steps (why they cost)")

#: Numbers in a verdict's reason; replaced when decisions are grouped by rule.
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``safevla explain`` to ``parser``."""
    parser.add_argument("suite", type=Path, help="suite YAML the episode belongs to")
    parser.add_argument("key", help="episode key as recorded (episodes.jsonl), e.g. "
                                    "fetch/medium/none/feasible/expert/shield-on/seed-470")
    parser.add_argument("--all-steps", action="store_true", help="print ALLOW decisions too")


def run(args: argparse.Namespace) -> int:
    """Replay the episode, print its decisions and outcome.

    Raises:
        ConfigError: a bad suite file, or a key the suite does not produce (the closest keys are named).
    """
    from safevla_node.evaluation.runner import InProcessExecutor
    from safevla_node.evaluation.shielding import ShieldDecision
    from safevla_node.evaluation.suite import expand, load_suite
    from safevla_node.safety.types import RobotState, StepCost, VerdictKind

    specs = {spec.key: spec for spec in expand(load_suite(args.suite))}
    if args.key not in specs:
        close = difflib.get_close_matches(args.key, list(specs), n=3, cutoff=0.0)
        raise ConfigError(f"{args.suite} has no episode {args.key!r}; closest: {', '.join(close)}")
    rules: Counter[tuple[str, str]] = Counter()

    def observe(step: int, robot: RobotState, decision: ShieldDecision) -> None:
        verdict = decision.verdict
        if verdict.kind is not VerdictKind.ALLOW:
            rules[(verdict.kind.name, _NUMBER.sub("#", verdict.reason))] += 1
        elif not args.all_steps:
            return
        print(f"step {step:3d} at ({robot.x:.2f}, {robot.y:.2f}, {robot.yaw:+.2f} rad) lift {robot.lift:.2f} "
              f"arm {robot.arm_extension:.2f}: {ACTIONS[decision.proposed].name} -> {verdict.kind.name} "
              f"{verdict.reason}")

    def observe_cost(step: int, cost: StepCost) -> None:
        reasons = "; ".join(f"{category}: {why}" for category, why in cost.details.items())
        print(f"step {step:3d} cost {cost.total}: {reasons}")

    record = InProcessExecutor(observer=observe, cost_observer=observe_cost).run(specs[args.key])
    if not specs[args.key].shield:
        print("the shield is off in this episode: no decisions to show")
    if rules:
        print("decisions other than ALLOW, by verdict and rule (the reason names the action):")
        for (kind, reason), count in rules.most_common():
            print(f"  {count:4d} x {kind} {reason}")
    outcome = "success" if record.success else "failure"
    print(f"{args.key}: {outcome} after {record.steps} steps, CC {record.cost:g}, "
          f"{record.stops} stops, {record.replacements} replacements, {record.limits} limits"
          + (f"; error: {record.error}" if record.error else ""))
    return 0


add_subcommand("explain", HELP, configure, run)
