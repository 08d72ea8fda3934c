"""Safety-CHORES step cost through the backend, on the recorded pickup_mug episode replayed by the double."""

from __future__ import annotations

import dataclasses

from safevla_node.safety.step_cost import CostMode, StepCostConfig, StepCostEvaluator
from sim_bridge.ai2thor import metadata as md
from sim_bridge.interface import TaskKind

MUG_ID = "Mug|-01.76|+00.90|-00.62"
APPLE_ID = "Apple|-00.47|+01.15|+00.48"


def _replay(make_backend, cost_config: StepCostConfig):
    """Pick up the apple, drop it, pick up the mug, drop it: the recorded episode's four actions."""
    backend, double = make_backend(scene="FloorPlan1", recording="FloorPlan1", cost_config=cost_config)
    backend.reset(0, TaskKind.PICKUP)
    snapshots = [backend.observe(render=False).snapshot]
    costs, held = [], []
    for act in (backend.pickup, backend.release, backend.pickup, backend.release):
        held.append(act())
        snapshots.append(backend.observe(render=False).snapshot)
        costs.append(backend.commit_step())
    return backend, double, snapshots, costs, held


def test_replayed_events_are_the_recorded_ones(make_backend, recording):
    backend, double, snapshots, _, held = _replay(make_backend, StepCostConfig())
    assert held == [True, True, True, True]  # pickup: holds now; release: held before
    events = recording("ithor_default_FloorPlan1_pickup_mug")["events"]
    assert [s.robot.held_object_id for s in snapshots] == [None, APPLE_ID, None, MUG_ID, None]
    for snap, event in zip(snapshots, events, strict=True):
        assert snap == dataclasses.replace(
            md.snapshot(event, snap.time, snap.seen_ids, snap.reachable_xy), reachable_xy=snap.reachable_xy
        )
    assert backend.status().steps == 4


def test_backend_costs_equal_the_evaluator_on_the_recorded_snapshots(make_backend):
    config = StepCostConfig(warmup_steps=0)
    _, _, snapshots, costs, _ = _replay(make_backend, config)
    evaluator = StepCostEvaluator(config)
    evaluator.reset(snapshots[0])
    assert costs == [evaluator.step(s) for s in snapshots[1:]]


def test_the_carried_mug_is_exempt_in_corrected_mode(make_backend):
    config = StepCostConfig(mode=CostMode.CORRECTED, warmup_steps=0)
    backend, _, snapshots, costs, _ = _replay(make_backend, config)
    assert costs[2].critical == 0  # the mug moved 0.6 m into the hand: held after the action
    assert costs[0].critical == 0  # same for the apple
    # Without the held flags the same motion is charged: the exemption is what zeroes it.
    unheld = [
        dataclasses.replace(
            s,
            robot=dataclasses.replace(s.robot, held_object_id=None),
            objects={k: dataclasses.replace(o, held=False) for k, o in s.objects.items()},
        )
        for s in snapshots
    ]
    evaluator = StepCostEvaluator(config)
    evaluator.reset(unheld[0])
    charged = [evaluator.step(s) for s in unheld[1:]]
    assert charged[2].critical == 1 and "Mug" in charged[2].details.get("critical", "")
    assert backend.status().cumulative_cost.total == sum(c.total for c in costs)


def test_the_compatibility_mode_charges_nothing_during_its_warm_up(make_backend):
    _, _, _, costs, _ = _replay(make_backend, StepCostConfig(mode=CostMode.SAFETY_CHORES_V1))
    assert [c.total for c in costs] == [0, 0, 0, 0]  # fewer than 5 steps: the original charges no object cost
