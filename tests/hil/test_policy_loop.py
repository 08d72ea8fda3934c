"""The whole graph of the ``sim`` profile (bridge, monitor, policy: three processes over DDS under
``use_sim_time``, started by ``StackLauncher`` with ``respawn``) acting on its own: the policy's proposals
become the monitor's primitives, the bridge closes a cost step for each, and the episode ends. Killing the
policy process stops the robot through the heartbeat rule, the launcher reports the death and restarts it.

The policy is a real tiny SafeVLA (image encoder, fusion transformer, decoder; random weights) whose actor
head alone is scripted to constant logits: p(move ahead) 0.7, p(end) 0.3 (``rig.write_scripted_policy``).
A random network's argmax never ends an episode on cue, so the node samples (``deterministic: false``) with
its seeded generator: with seed 3 the draws are move, move, end, ... (``rig.sampled_actions`` computes them
with the same rule). The episode thus ends by the policy's own ``end``, judged by the simulator, after a
known number of steps; the room (``rig.open_room``) leaves eight moves before the east wall.

The tests run in file order and share the stack: killing the policy comes first because it needs a policy
at the start of a move; its respawned process then drives the same episode to its end. The monitor's base
primitives run at ``MOVE_SPEED`` (a 0.2 m move takes about 5 s instead of 2.5 s; the primitive timeouts of
monitor and policy grow to match): this probe learns of the
move from its queue of received twists, which lags by seconds when the policy process loads torch on two
busy cores, and the kill must still land mid-move, not in the gap after it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from safevla_node.actions import ACTION_BY_CODE
from safevla_node.dds import DomainLease
from safevla_node.launcher import StackLauncher
from safevla_node.safety.monitor import MonitorConfig
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.types import Category, VerdictKind
from safevla_node.stack import load_stack
from tests.hil.rig import (
    HIL_ARGUMENTS,
    STARTUP_TIMEOUT_S,
    Probe,
    open_room,
    running_stack,
    sampled_actions,
    with_parameters,
    write_scene,
    write_scripted_policy,
)
from tests.ros_harness import ros_client

pytestmark = pytest.mark.ros

MOVE = ACTION_BY_CODE["m"].index
END = ACTION_BY_CODE["end"].index
SEED = 3
MONITOR = MonitorConfig()  # the shipped defaults, as in config/safety_monitor.yaml
TRANSPORT_S = 0.04  # DDS delivery and scheduling allowance on this loaded 2-core box
MOVE_SPEED = 0.04  # m/s, the monitor's `primitive.max_linear_speed` here (shipped: 0.15)
PRIMITIVE_TIMEOUT_S = 20.0  # monitor `primitive.timeout` (shipped: 5 s) and policy `primitive_timeout_s` (10 s)
#: Camera frames of 66 KB instead of 266 KB (396 x 224; the policy resizes either). With discovery confined to
#: localhost, rmw_fastrtps gives each participant a 512 KB shared-memory segment, two such frames. A subscriber
#: killed while Fast DDS was receiving a frame never releases it (eProsima/Fast-DDS#5469), and the bridge then
#: had no room for another: the respawned policy got odometry but no image for 90 s, about one run in seven.
CAMERA_SIZE = (198, 112)


@dataclass
class Loop:
    probe: Probe
    stack: StackLauncher
    draws: list[int]


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("policy_loop")
    probabilities = write_scripted_policy(tmp / "policy", {MOVE: 0.7, END: 0.3})
    arguments = {**HIL_ARGUMENTS, "checkpoint": str(tmp / "policy")}
    launches = with_parameters(load_stack().resolve("sim", arguments), {
        "sim_bridge": {"scene_file": write_scene(open_room(), tmp / "room.json"), "infeasible": True,
                       "camera_width": CAMERA_SIZE[0], "camera_height": CAMERA_SIZE[1]},
        "safety_monitor": {"primitive.max_linear_speed": MOVE_SPEED, "primitive.timeout": PRIMITIVE_TIMEOUT_S},
        "policy_node": {"deterministic": False, "seed": SEED, "primitive_timeout_s": PRIMITIVE_TIMEOUT_S},
    })
    with DomainLease() as lease, running_stack(launches, lease, tmp / "logs", respawn=True) as stack, \
            ros_client(lease) as client:
        probe = Probe(client)
        client.spin_until(lambda: probe.episode and probe.odom is not None, STARTUP_TIMEOUT_S, "the bridge")
        # enough draws for results dropped under load (each skips one draw) before the policy ends
        yield Loop(probe, stack, sampled_actions(probabilities, SEED, 40))


def test_killing_the_policy_mid_move_stops_the_robot_within_a_period_of_the_heartbeat_timeout(loop):
    probe = loop.probe
    assert loop.draws[0] == MOVE
    # DDS matches the policy's heartbeat writer with this probe separately from the monitor: on a loaded box
    # the first move may start before the probe hears a beat, and then a later move is killed instead.
    probe.client.spin_until(lambda: probe.heartbeats and len(probe.cmd_vel) >= 3 and all(
        e.value.linear_x > 0.0 for e in probe.cmd_vel[-3:]), STARTUP_TIMEOUT_S, "a move under way, heartbeat heard")
    steps_at_kill = probe.episode["steps"]
    os.kill(loop.stack.pid("policy_node"), signal.SIGKILL)
    killed_wall = time.monotonic()
    probe.client.spin_until(
        lambda: any(e.wall > killed_wall and e.value.linear_x == 0.0 for e in probe.cmd_vel), 5.0,
        "a zero twist after the kill")
    before = [e for e in probe.cmd_vel if e.wall <= killed_wall]
    zero = next(e for e in probe.cmd_vel if e.wall > killed_wall and e.value.linear_x == 0.0)
    timeout = MONITOR.source_timeout_s.policy_heartbeat
    # The monitor's clock is sim time: its timeout and period count there. The kill happened after the dead
    # policy's last heartbeat, stamped with its (sim) clock, so measuring from that stamp bounds it tighter.
    last_beat = max(e.value for e in probe.heartbeats)
    sim_s, wall_s = zero.sim - last_beat, zero.wall - killed_wall
    print(f"first zero twist {sim_s * 1e3:.0f} ms (sim) after the last heartbeat, {wall_s * 1e3:.0f} ms "
          f"(wall) after the kill: {(sim_s - timeout) * 1e3:.0f} / {(wall_s - timeout) * 1e3:.0f} ms after "
          f"the {timeout * 1e3:.0f} ms timeout; allowed {(MONITOR.period + TRANSPORT_S) * 1e3:.0f} ms")
    assert before[-1].value.linear_x > 0.0, "the robot was not moving at the kill"
    assert sim_s <= timeout + MONITOR.period + TRANSPORT_S
    ended = probe.wait_primitive_end(killed_wall, 5.0)
    assert ended.phase is PrimitivePhase.ABORTED and ended.reason.startswith("policy lost: heartbeat stale"), (
        ended)
    # the bridge closes the aborted move's step too; the next test counts the steps after this one
    probe.client.spin_until(
        lambda: probe.costs_since(killed_wall) and probe.episode["steps"] == steps_at_kill + 1, 5.0,
        "the aborted move's step cost and episode status")
    verdicts = probe.verdicts_since(killed_wall)
    assert any(v.kind is VerdictKind.STOP and v.category is Category.FAULT
               and v.reason.startswith("policy lost") for v in verdicts), verdicts
    died = loop.stack.poll()  # stops the robot (about a second), then restarts the policy (respawn)
    assert [d.name for d in died] == ["policy_node"] and "killed by signal 9" in died[0].describe()


def test_an_episode_runs_to_its_end_through_proposals_primitives_and_step_costs(loop):
    probe = loop.probe
    loop.stack.poll()  # respawns the policy if the kill test failed before its own poll
    # This probe does not spin while the launcher restarts the policy: what queued meanwhile (the killed move's
    # abort, if the kill test failed before it) gets its receipt time now and must not count as the new policy's.
    probe.client.spin_for(0.5)
    start, steps_before = time.monotonic(), probe.episode["steps"]
    x_before = probe.pose()[0]
    try:
        probe.client.spin_until(lambda: probe.episode.get("done"), 90.0, "the episode to end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {probe.policy_state()}") from None
    probe.client.spin_for(0.3)
    # What the monitor executed, not what this probe heard: DDS matches a newly started process's writers
    # with each reader separately, so the respawned policy's first proposal may reach the monitor before
    # this probe's subscription is matched.
    finished = [s for s in probe.statuses_since(start) if s.phase is not PrimitivePhase.RUNNING]
    proposed = [s.action for s in finished]
    costs = probe.costs_since(start)
    episode = probe.episode
    print(f"proposed {proposed} (draws {loop.draws}); {episode['steps']} steps, done, cost {episode['cost']}")
    beats = [e.sim for e in probe.heartbeats if e.wall > start]
    print(f"largest gap between the respawned policy's heartbeats here: "
          f"{max(b - a for a, b in zip(beats, beats[1:])) * 1e3:.0f} ms (sim time of receipt)")
    draws = iter(loop.draws)
    assert all(a in draws for a in proposed), "not the sampler's draws (in order; a dropped result skips one)"
    assert proposed[-1] == END and proposed.count(MOVE) >= 1
    assert [s.phase for s in finished] == [PrimitivePhase.DONE] * len(proposed), [
        (s.proposal_id, s.phase.value, s.reason) for s in finished]
    assert len(costs) == len(proposed) and all(c["total"] == "0" for c in costs), costs
    assert episode["steps"] == steps_before + len(proposed) and episode["cost"] == 0
    assert probe.pose()[0] - x_before == pytest.approx(0.2 * proposed.count(MOVE), abs=0.05)
