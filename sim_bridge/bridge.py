"""The simulation bridge core: what the ``sim_bridge`` node does, without ROS.

It owns simulated time: each ``step`` advances the backend by ``physics_dt_s`` under the latched commands
and says which sensor streams are due, so the node publishes ``/clock`` and the sensors at their rates in
sim time. Commands are checked before they reach the physics (a NaN twist or an out-of-range joint target
raises ``ValueError`` and is dropped), and a base command older than ``command_timeout_s`` is zeroed, as
the Stretch driver does with its 0.5 s deadman.

Step accounting follows the safety monitor's motion primitives: each finished primitive
(``safevla/primitive_status`` DONE or ABORTED) closes one Safety-CHORES cost step, and ``end``/``sub_done``
run through the backend's discrete action so it judges success exactly as in-process evaluation does. With
no primitive running for ``fallback_step_s`` of sim time while the base moved (teleop, Nav2: at least
``fallback_min_travel_m`` or ``fallback_min_turn_rad`` since the last step), the bridge closes a step on its
own so costs are still charged. Moved, not commanded: a twist the monitor sent before aborting a primitive can
be handled after the abort (two topics keep no order between them), and its few millimetres are no step.

Discrete execution (``action_execution: discrete``) runs each action the monitor lets through atomically,
as AI2-THOR (the paper's simulator) executes Stretch actions: the deciding ``safevla/primitive_status`` of a
proposal (RUNNING, with the executed action) runs ``backend.execute_action(executed)``, so odometry and joints
jump to the result, the node reports the action on ``safevla/action_result`` stamped with the time after it
(the monitor, also in ``action_execution: discrete``, ends the primitive there), and exactly one cost step is
closed per action; a refusal (ABORTED before running) spends one step standing still (``commit_step``).
The backend is never advanced in between and ``cmd_vel``/arm trajectories are ignored, so the backend sees
exactly the calls of in-process evaluation; sim time runs on between actions (the nodes need ``/clock``) and
jumps by the backend time each action took. Continuous execution (the default) integrates the monitor's
commands in the physics instead.

Two test-bench settings: ``scene_file`` replaces the generated homes with one purpose-made scene (a hazard
placed exactly where a hardware-in-the-loop test needs it), and ``scan_fov_deg`` crops the published scan to
a sector ahead, as a lidar partly hidden by the robot's own mast would see, so the monitor has real blind
spots.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from safevla_node.actions import ACTIONS, ActionKind
from safevla_node.config import check_choice, check_range, field
from safevla_node.errors import ConfigError
from safevla_node.evaluation.proposer import ProposerConfig
from safevla_node.evaluation.suite import DIFFICULTIES, PERTURBATIONS
from safevla_node.safety.monitor import FrameConfig
from safevla_node.safety.monitor_types import PrimitiveStatus
from safevla_node.safety.primitives import EXECUTION_MODES, PrimitivePhase
from safevla_node.safety.types import StepCost
from sim_bridge.homegen import Scene
from sim_bridge.interface import EpisodeStatus, LaserScanData, Observation, SimBackend, TaskKind

__all__ = ["BridgeConfig", "BridgeStep", "SimBridge", "crop_scan", "scene_source"]

LOG = logging.getLogger(__name__)

#: The joint whose target opens or closes the gripper; closing below GRIPPER_CLOSED_M means "grasp".
GRIPPER_JOINT = "gripper_aperture"


@dataclass(frozen=True)
class BridgeConfig:
    """Parameters of the sim_bridge node (``config/sim_bridge.yaml``)."""

    backend: str = field("mujoco", "simulator backend: mujoco (embedded) or ai2thor (needs its Unity build)")
    task: str = field("objectnav", "task family of the episode: objectnav, pickup or fetch")
    seed: int = field(0, "scene and task seed of the episode loaded at start-up and by ~/reset")
    scene_file: str = field(
        "", "scene JSON (sim_bridge.homegen.Scene.to_json) used for every episode, whatever the seed; empty: "
        "a home generated from the seed; mujoco backend only")
    infeasible: bool = field(False, "load the task's infeasible variant (target absent)")
    physics_dt_s: float = field(0.02, "simulated time advanced per bridge step (s)")
    real_time_factor: float = field(1.0, "sim seconds per wall second; 0 runs as fast as possible")
    action_execution: str = field(
        "continuous", "continuous: the physics integrates the monitor's cmd_vel and arm goals; discrete: each "
        "action the monitor lets through runs atomically (backend.execute_action), as in-process evaluation "
        "and AI2-THOR execute it, and commands are ignored")
    difficulty: str = field(
        "medium", "difficulty of the generated homes: easy, medium or hard; mujoco only, read at start-up")
    perturbation: str = field(
        "none", "OOD perturbation of every episode: none, colour, light, material or all; mujoco only, read "
        "at start-up")
    render_depth: bool = field(True, "render the aligned depth image with the cameras; read at start-up")
    camera_rate_hz: float = field(5.0, "rate of both cameras, depth and camera_info (sim time)")
    scan_rate_hz: float = field(10.0, "rate of the laser scan (sim time)")
    scan_fov_deg: float = field(
        360.0, "field of view of the published scan, centred ahead (deg); less leaves blind spots behind, "
        "like a lidar partly hidden by the mast")
    state_rate_hz: float = field(25.0, "rate of odometry and joint states (sim time)")
    objects_rate_hz: float = field(2.0, "rate of the privileged object list safevla/objects (sim time)")
    command_timeout_s: float = field(0.5, "a base command older than this is replaced by zero (deadman)")
    fallback_step_s: float = field(1.0, "close a cost step after this much sim time without a primitive")
    fallback_min_travel_m: float = field(
        0.02, "that step needs the base to have travelled at least this far since the last step (m), or turned "
        "fallback_min_turn_rad")
    fallback_min_turn_rad: float = field(0.05, "that step needs the base to have turned at least this much "
                                               "since the last step (rad), or travelled fallback_min_travel_m")
    gripper_closed_m: float = field(0.02, "a gripper_aperture target at or below this grasps")
    camera_width: int = field(396, "camera image width (px), as SafeVLA's AI2-THOR set-up")
    camera_height: int = field(224, "camera image height (px)")
    render: bool = field(True, "render cameras; false publishes no images (faster, for scan-only tests)")
    frames: FrameConfig = field(FrameConfig(), "frame ids of the published messages")
    gripper_camera_frame: str = field("gripper_camera_color_optical_frame", "frame of the gripper camera")
    proposer: ProposerConfig = field(ProposerConfig(), "a policy the bridge runs itself (evaluation through ROS)")
    step_budget: int = field(
        0, "discrete: execute at most this many actions per episode, whoever proposes them (0: the task's own "
        "budget); later proposals are not executed, so the backend sees exactly an in-process episode's calls")

    def __post_init__(self) -> None:
        check_choice("action_execution", self.action_execution, EXECUTION_MODES)
        check_choice("difficulty", self.difficulty, DIFFICULTIES)
        check_choice("perturbation", self.perturbation, PERTURBATIONS)
        if self.proposer.kind != "none" and not self.discrete:
            raise ConfigError(f"proposer.kind={self.proposer.kind!r} needs action_execution 'discrete' (the "
                              "proposer steps with executed actions); set it or proposer.kind 'none'")
        try:
            TaskKind(self.task)
        except ValueError:
            raise ConfigError(f"task={self.task!r} is not one of {[t.value for t in TaskKind]}") from None
        check_range("physics_dt_s", self.physics_dt_s, 1e-4, 0.5)
        check_range("real_time_factor", self.real_time_factor, 0.0, 100.0)
        for name in ("camera_rate_hz", "scan_rate_hz", "state_rate_hz", "objects_rate_hz"):
            check_range(name, getattr(self, name), 0.1, 1000.0)
        check_range("scan_fov_deg", self.scan_fov_deg, 1.0, 360.0)
        check_range("command_timeout_s", self.command_timeout_s, 0.01, 10.0)
        check_range("fallback_step_s", self.fallback_step_s, 0.05, 60.0)
        check_range("fallback_min_travel_m", self.fallback_min_travel_m, 0.0, 10.0)
        check_range("fallback_min_turn_rad", self.fallback_min_turn_rad, 0.0, math.pi)
        check_range("camera_width", self.camera_width, 16, 800)
        check_range("camera_height", self.camera_height, 16, 600)
        check_range("step_budget", self.step_budget, 0, 10_000)

    @property
    def discrete(self) -> bool:
        """Actions run atomically (see the module docstring)."""
        return self.action_execution == "discrete"


@dataclass(frozen=True)
class BridgeStep:
    """One bridge step: the observation, which streams are due at its time, and the cost of a step the
    bridge closed on its own (``fallback_step_s`` of motion without a primitive), if it did."""

    observation: Observation
    cameras: bool
    scan: bool
    state: bool
    objects: bool
    closed_cost: StepCost | None = None


def scene_source(config: BridgeConfig) -> Callable[[int], Scene] | None:
    """The backend's seed -> scene function for ``scene_file`` (None: generate homes from the seed).

    The file is read and parsed once, here, so a bad one stops the node at start-up.

    Raises:
        ConfigError: the file is missing or is not a scene JSON (naming the file), or the backend cannot
            load given scenes.
    """
    if not config.scene_file:
        return None
    if config.backend != "mujoco":
        raise ConfigError(f"scene_file={config.scene_file!r} needs backend 'mujoco', got {config.backend!r}: "
                          "clear scene_file to use the backend's own scenes")
    path = Path(config.scene_file).expanduser()
    try:
        text = path.read_text()
        Scene.from_json(text)
    except OSError as exc:
        raise ConfigError(f"scene_file={str(path)!r} cannot be read ({exc.strerror}): write one with "
                          "Scene.to_json or clear scene_file") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"scene_file={str(path)!r} is not a scene written by Scene.to_json: {exc}"
                          ) from None
    return lambda _seed: Scene.from_json(text)


#: A beam counts as on the sector's edge within this: scan fields are float32 (LaserScanData), so beam angles
#: are off by up to a few 1e-7 rad.
_BEAM_ANGLE_TOLERANCE_RAD = 1e-6


def crop_scan(scan: LaserScanData, fov_rad: float) -> LaserScanData:
    """The beams of ``scan`` within ``fov_rad / 2`` of straight ahead, in sweep order from the first kept
    one (a sector across the scan's seam comes out contiguous).

    Raises:
        ValueError: no beam lies in the sector.
    """
    if fov_rad >= 2.0 * math.pi:
        return scan
    n = len(scan.ranges)
    angles = scan.angle_min + scan.angle_increment * np.arange(n)
    wrapped = np.mod(angles + math.pi, 2.0 * math.pi) - math.pi
    keep = np.abs(wrapped) <= fov_rad / 2.0 + _BEAM_ANGLE_TOLERANCE_RAD
    if not keep.any():
        raise ValueError(f"no beam of the scan lies within {fov_rad:.4f} rad ahead")
    first = int(np.flatnonzero(keep & ~np.roll(keep, 1))[0]) if not keep.all() else 0
    count = int(keep.sum())
    index = (first + np.arange(count)) % n
    return replace(scan, angle_min=float(wrapped[first]), ranges=np.asarray(scan.ranges)[index])


class _Schedule:
    """Due-times of one stream in sim time (no drift: the next time is a multiple of the period)."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz
        self.next_time = 0.0

    def due(self, now: float) -> bool:
        if now + 1e-9 < self.next_time:
            return False
        self.next_time = (math.floor(now / self.period + 1e-9) + 1) * self.period
        return True


def _base_pose(observation: Observation) -> tuple[float, float, float]:
    robot = observation.snapshot.robot
    return robot.x, robot.y, robot.yaw


class SimBridge:
    """Drives one backend from ROS-style commands; see the module docstring."""

    def __init__(self, backend: SimBackend, config: BridgeConfig) -> None:
        self.backend = backend
        self.config = config
        self.episode = 0
        self.last_cost = StepCost()
        # discrete: the last proposal executed or refused (ids run across episodes, so a late status of
        # the previous episode's proposal never counts as a decision)
        self._decided_id: int | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        c = self.config
        self._schedules = {name: _Schedule(rate) for name, rate in (
            ("cameras", c.camera_rate_hz), ("scan", c.scan_rate_hz), ("state", c.state_rate_hz),
            ("objects", c.objects_rate_hz))}
        self._twist_time: float | None = None
        self._primitive_running = False
        self._last_step_time = 0.0
        self._gripper_closed: bool | None = None

    @property
    def time(self) -> float:
        """Current sim time (s)."""
        return self._time

    def reset(self, seed: int | None = None, task: str | None = None, infeasible: bool | None = None) -> Observation:
        """Load an episode (defaults: the configured seed, task and variant)."""
        c = self.config
        observation = self.backend.reset(
            c.seed if seed is None else seed, TaskKind(c.task if task is None else task),
            infeasible=c.infeasible if infeasible is None else infeasible,
        )
        self.episode += 1
        self._time = observation.time
        self._reset_state()
        self._keep(observation)
        self._step_pose = _base_pose(observation)
        LOG.info("episode %d: %s", self.episode, self.backend.status().task.instruction)
        return observation

    def _keep(self, observation: Observation) -> None:
        """The latest backend observation (scan cropped as published); discrete mode republishes it."""
        if self.config.scan_fov_deg < 360.0:
            observation = replace(observation, scan=crop_scan(observation.scan,
                                                              math.radians(self.config.scan_fov_deg)))
        self._backend_time = observation.time
        self._observation = observation

    @property
    def observation(self) -> Observation:
        """The latest observation, as published (discrete mode: the one the last step ended with)."""
        return self._observation

    def on_twist(self, linear_x: float, angular_z: float) -> None:
        """Latch a base velocity (ignored in discrete mode, where actions run whole).

        Raises:
            ValueError: not finite (nothing reaches the physics).
        """
        if self.config.discrete:
            return
        self.backend.set_base_twist(linear_x, angular_z)  # the backend refuses NaN/Inf before storing
        self._twist_time = self._time

    def on_joint_targets(self, targets: Mapping[str, float]) -> None:
        """Latch joint targets; a gripper target grasps (closing) or releases (opening) on change.

        Ignored in discrete mode, where actions run whole.

        Raises:
            ValueError: unknown joint, non-finite or out-of-range target (nothing reaches the physics).
        """
        if self.config.discrete:
            return
        arm = {name: value for name, value in targets.items() if name != GRIPPER_JOINT}
        if GRIPPER_JOINT in targets and not math.isfinite(targets[GRIPPER_JOINT]):
            raise ValueError(f"{GRIPPER_JOINT} target {targets[GRIPPER_JOINT]!r} is not finite")
        if arm:
            self.backend.set_joint_targets(arm)
        if GRIPPER_JOINT in targets:
            closed = targets[GRIPPER_JOINT] <= self.config.gripper_closed_m
            if closed != self._gripper_closed:
                (self.backend.pickup if closed else self.backend.release)()
                self._gripper_closed = closed

    def on_primitive_status(self, status: PrimitiveStatus) -> StepCost | None:
        """Account for a monitor status; the cost of the step it closed, or None.

        Continuous: RUNNING holds off the fallback step, DONE/ABORTED closes one step. Discrete: the first
        status of a new proposal id decides it: RUNNING (or DONE) executes ``status.executed`` whole, ABORTED
        spends a step standing still; the later statuses of that proposal close nothing. Nothing is closed
        once the episode is over, nor (discrete) once ``step_budget`` actions ran.
        """
        status_now = self.status()
        if status_now.done:
            return None
        if not self.config.discrete:
            if status.phase is PrimitivePhase.RUNNING:
                self.on_primitive_started()
            elif status.phase in (PrimitivePhase.DONE, PrimitivePhase.ABORTED):
                return self.on_primitive_finished(status.executed)
            return None
        if status.proposal_id == self._decided_id or status.phase is PrimitivePhase.IDLE:
            return None
        if self.config.step_budget and status_now.steps >= self.config.step_budget:
            return None  # the episode's budget is spent: nothing more runs until the next reset
        self._decided_id = status.proposal_id
        render = self.config.render
        before = self._backend_time
        if status.phase is PrimitivePhase.ABORTED:
            cost = self.backend.commit_step()
            observation = self.backend.observe(render)
        else:
            result = self.backend.execute_action(status.executed, render)
            cost, observation = result.cost, result.observation
        self._keep(observation)
        self._time += max(0.0, observation.time - before)
        self._close_step(cost)
        return cost

    def on_primitive_started(self) -> None:
        """A primitive runs: its end closes the step, so its motion must not close one meanwhile."""
        self._primitive_running = True

    def on_primitive_finished(self, executed_action: int) -> StepCost:
        """Close the cost step of one finished primitive (``end``/``sub_done`` go through the backend)."""
        if 0 <= executed_action < len(ACTIONS) and ACTIONS[executed_action].kind is ActionKind.EPISODE:
            cost = self.backend.execute_action(executed_action, render=False).cost
        else:
            cost = self.backend.commit_step()
        self._close_step(cost)
        return cost

    def _close_step(self, cost: StepCost) -> None:
        self.last_cost = cost
        self._step_pose = _base_pose(self._observation)
        self._primitive_running = False
        self._last_step_time = self._time
        if cost.total:
            LOG.warning("step cost %d: %s", cost.total, dict(cost.details))

    def step(self) -> BridgeStep:
        """Advance by ``physics_dt_s``; report the observation and the streams due now."""
        c = self.config
        if c.discrete:  # time runs on, the world waits for the next action
            due = {name: s.due(self._time + c.physics_dt_s) for name, s in self._schedules.items()}
            self._time += c.physics_dt_s
            observation = replace(self._observation, time=self._time)
            cameras = due["cameras"] and c.render and observation.nav_camera is not None
            return BridgeStep(observation, cameras, due["scan"], due["state"], due["objects"])
        if self._twist_time is not None and self._time - self._twist_time > c.command_timeout_s:
            self.backend.set_base_twist(0.0, 0.0)
            self._twist_time = None
        if not self.status().done:
            self.backend.advance(c.physics_dt_s)
        closed = None
        if (not self._primitive_running and self._time - self._last_step_time >= c.fallback_step_s
                and self._moved_since_step()):
            closed = self.backend.commit_step()
            self._close_step(closed)
        due = {name: s.due(self._time + c.physics_dt_s) for name, s in self._schedules.items()}
        self._keep(self.backend.observe(render=c.render and due["cameras"]))
        observation = self._observation
        self._time = observation.time
        return BridgeStep(observation, due["cameras"] and c.render, due["scan"], due["state"], due["objects"],
                          closed)

    def _moved_since_step(self) -> bool:
        """Whether the base travelled or turned beyond the fallback thresholds since the last step."""
        (x0, y0, yaw0), (x, y, yaw) = self._step_pose, _base_pose(self._observation)
        c = self.config
        return (math.hypot(x - x0, y - y0) >= c.fallback_min_travel_m
                or abs(math.remainder(yaw - yaw0, math.tau)) >= c.fallback_min_turn_rad)

    def status(self) -> EpisodeStatus:
        """Progress of the current episode."""
        return self.backend.status()
