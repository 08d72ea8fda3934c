"""When the policy node may act: the plain-Python core of ``safevla_node.nodes.policy_node``.

No rclpy and no torch here: the model is reached through ``StepPolicy``.

A SafeVLA policy is step-synchronous: observe, choose one discrete action, let the safety monitor execute it
as a motion primitive, observe again. ``PolicyRunner`` decides, at every ``poll``, whether an inference may
start, and turns its result into the proposal to publish. The rules, in order (the first that holds blocks):

1. Fault: the policy raised, or an inference ran longer than ``inference_timeout_s`` (a hang). Its result is
   never published; proposing stays off until the next episode reset or instruction, and while a hung
   inference still runs no other may start (the model is not reentrant).
2. Episode ended: the policy chose ``end``; nothing more until an episode reset or a *different* instruction
   (an upstream re-publishing the same goal must not restart a finished task).
3. No instruction, or one older than ``max_instruction_age_s`` (0 = a latched goal never expires).
4. Stale images: either camera missing or its latest frame older than ``max_image_age_s`` (arrival time on
   the node clock). Nothing is proposed, so the monitor's deadman stops the robot.
5. One inference in flight at most; frames are never queued: only the latest of each camera is kept, and a
   frame replaced before any inference used it counts as dropped.
6. Waiting for the monitor: after a proposal, until the monitor reports DONE or ABORTED for it on
   ``safevla/primitive_status``, or ``primitive_timeout_s`` passes. The monitor numbers proposals from 1 in
   arrival order; ours is the first status, after publishing, whose id differs from the last one seen before
   and whose action is ours (so a monitor restart or another proposer cannot complete our step).
7. An observation must be taken after the end of the previous step (no acting on a frame taken mid-motion):
   both frames, and the odometry and joint states once any were received, must be *stamped* (header stamp;
   the arrival time when the stamp is zero) no earlier than the end of the step: the node clock when the
   monitor's DONE/ABORTED was handled, or the ``stamp`` it carries (its latest odometry's when the proposal
   ended) if later; the node clock when the primitive timed out or the episode began. And no later than
   ``CLOCK_JUMP_S`` past the node clock now (a frame from the future predates a clock that jumped back at
   a simulator reset). Stamps, not arrival times: two messages handled at the same clock value would
   compare equal, and a frame captured before the step ended may be handled after it (a simulator that
   executes actions whole publishes the pre-step world up to the instant it executes one). On a robot the
   rule costs at most one camera period per step: the first frame captured after the node learned that the
   motion ended.
8. ``max_rate_hz`` between inference starts.

Refusals: the runner keeps a ``safevla_node.safety.refusals.RefusalMemory`` (the one the evaluation adapters
keep): the deciding status of each proposal on ``safevla/primitive_status`` (the first one of it, which
carries the shield's ``verdict``) says whether the shield refused it (STOP, or REPLACE by another action)
and every inference is masked (``InferenceRequest.action_mask``) against the actions refused at the current
pose (odometry and the ``joint_lift`` / ``wrist_extension`` joint states): after a refusal the policy
chooses its next best action instead of proposing the refused one forever while the robot stands still.
A fail-safe refusal (stale sensors, no verdict) says nothing about the action and is not remembered; without
odometry there is no pose to key on and nothing is masked.

A result is also dropped (``stale_results``) when its frames have grown older than ``max_image_age_s`` by the
time it is ready. When the monitor executed a different action than proposed (the shield replaced it), the
executed one is fed back to the policy as its previous action.

Times: ``now`` is the node clock (sim time under ``use_sim_time``), ``wall`` a monotonic clock; inference
latency and the hang timeout are wall time, because a hung model hangs in wall time even while the sim waits.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import Enum
from typing import Any, Literal, Protocol

import numpy as np

from safevla_node.actions import ACTION_BY_CODE, NUM_ACTIONS
from safevla_node.config import check_range, field
from safevla_node.errors import ConfigError, MessageError
from safevla_node.safety.monitor_types import OdometryData, PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase
from safevla_node.safety.refusals import RefusalMemory, robot_pose
from safevla_node.safety.types import DiscreteCommand, RobotState

__all__ = [
    "Camera",
    "InferenceRequest",
    "InferenceWorker",
    "MalformedFrame",
    "PolicyNodeConfig",
    "PolicyReport",
    "PolicyRunner",
    "RunnerState",
    "StepExecutor",
    "StepResult",
]

_log = logging.getLogger(__name__)

#: An instruction received this close to an episode reset (s) is taken as the new episode's goal.
RESET_GRACE_S = 0.5
#: A node clock that goes back by more than this (s) has jumped (sim time restarted), not jittered.
CLOCK_JUMP_S = 0.05

END_ACTION = ACTION_BY_CODE["end"].index
_LATENCY_WINDOW = 100
_RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class PolicyNodeConfig:
    """Everything the policy node is configured with (ROS parameters)."""

    checkpoint: str = field(
        "", "policy to load: a directory written by SafeVLAPolicy.save_pretrained, an allenact .pt or a "
        "Lightning .ckpt; empty = the shipped policy policies/checkpoints/bc_tiny/")
    dinov2_path: str = field(
        "", "DINOv2 weights for checkpoints without an image encoder (empty: from the checkpoint)")
    tokenizer_path: str = field(
        "", "tokenizer.json or a local t5-small tokenizer directory (empty: from the checkpoint)")
    device: Literal["auto", "cpu", "cuda"] = field(
        "auto", "inference device: auto (CUDA when available), cpu, cuda")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        "auto", "inference precision: auto (bf16/fp16 autocast on CUDA, fp32 on CPU), fp32, bf16, fp16 (CUDA)")
    instruction: str = field(
        "", "the goal, as a parameter: setting it starts a new episode with that goal (even the same text), "
        "setting it empty withdraws the goal and discards a running inference; an orchestrator's synchronous "
        "alternative to safevla/instruction (empty at start-up: wait for the topic)")
    compressed_images: bool = field(
        False, "subscribe the cameras' /compressed (JPEG/PNG sensor_msgs/CompressedImage) topics instead of "
        "raw")
    max_rate_hz: float = field(5.0, "most inferences started per second (Hz)")
    max_image_age_s: float = field(1.0, "no action from a camera frame older than this (s)")
    max_instruction_age_s: float = field(
        0.0, "no action from an instruction older than this (s); 0 = the instruction is a latched goal that "
        "never expires")
    primitive_timeout_s: float = field(
        10.0, "propose again when the monitor has not reported DONE/ABORTED of a proposal within this (s)")
    inference_timeout_s: float = field(
        5.0, "an inference running longer than this is a hang: its result is discarded and the node faults "
        "(s)")
    deterministic: bool = field(True, "true: the most probable action; false: sample from the distribution")
    seed: int = field(0, "seed of the sampling generator (deterministic: false)")
    object_in_hand_joint: str = field(
        "gripper_aperture", "joint_states joint whose position tells whether the gripper holds an object")
    object_in_hand_range: tuple[float, float] = field(
        (0.005, 0.09), "an object is in hand while that joint lies within [low, high]: a gripper closed on "
        "an object stops between fully closed and open (m)")
    diagnostics_rate_hz: float = field(1.0, "/diagnostics publishing rate (Hz)")
    heartbeat_rate_hz: float = field(
        10.0, "safevla/policy_heartbeat rate (Hz, wall clock); the monitor aborts a primitive when none "
        "arrived within its source_timeout_s.policy_heartbeat")

    def __post_init__(self) -> None:
        check_range("max_rate_hz", self.max_rate_hz, 0.01, 100.0)
        check_range("max_image_age_s", self.max_image_age_s, 0.01, 60.0)
        check_range("max_instruction_age_s", self.max_instruction_age_s, 0.0, 86400.0)
        check_range("primitive_timeout_s", self.primitive_timeout_s, 0.01, 600.0)
        check_range("inference_timeout_s", self.inference_timeout_s, 0.01, 600.0)
        check_range("seed", self.seed, 0, 2**63 - 1)
        check_range("diagnostics_rate_hz", self.diagnostics_rate_hz, 0.01, 100.0)
        check_range("heartbeat_rate_hz", self.heartbeat_rate_hz, 1.0, 1000.0)
        low, high = self.object_in_hand_range
        if not low < high:
            raise ConfigError(f"object_in_hand_range={self.object_in_hand_range!r} must be [low, high] with "
                              "low < high")


class Camera(str, Enum):
    """The two cameras the policy sees."""

    NAV = "nav_camera"
    MANIP = "manip_camera"


class RunnerState(str, Enum):
    """Why the runner is (not) acting, for /diagnostics; see the module docstring for the order."""

    FAULT = "fault"
    EPISODE_ENDED = "episode_ended"
    NO_INSTRUCTION = "no_instruction"
    STALE_INSTRUCTION = "stale_instruction"
    STALE_IMAGES = "stale_images"
    INFERRING = "inferring"
    EXECUTING = "executing"
    WAITING_FRAME = "waiting_frame"
    RATE_LIMITED = "rate_limited"
    READY = "ready"


#: Decodes a kept frame to (H, W, 3) uint8 RGB; raises MessageError for a malformed message. Frames are kept
#: undecoded, so the frames dropped in favour of newer ones are never decoded.
FrameLoader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class InferenceRequest:
    """One step to run on the inference worker.

    Attributes:
        request_id: counts requests from 1.
        episode: the runner's episode number it belongs to.
        reset: reset the policy's episode state first (a new episode).
        executed_override: action the monitor executed instead of the policy's last one (fed back), or None.
        instruction: the goal text.
        nav: loader of the navigation camera frame.
        manip: loader of the manipulation camera frame.
        object_in_hand: the gripper holds an object.
        frame_times: arrival times (node clock, s) of the two frames.
        deterministic: choose the most probable action (else sample).
        action_mask: True per allowed action (the actions the shield refused at this pose are False), or
            None: all allowed.
    """

    request_id: int
    episode: int
    reset: bool
    executed_override: int | None
    instruction: str
    nav: FrameLoader
    manip: FrameLoader
    object_in_hand: bool
    frame_times: tuple[float, float]
    deterministic: bool = True
    action_mask: tuple[bool, ...] | None = None


@dataclass(frozen=True)
class StepResult:
    """The action chosen and the distribution it came from (sums to 1)."""

    action_index: int
    probabilities: tuple[float, ...]


@dataclass(frozen=True)
class MalformedFrame:
    """A kept frame could not be decoded; the policy was not touched."""

    reason: str


StepOutcome = StepResult | MalformedFrame


@dataclass(frozen=True)
class PolicyReport:
    """What /diagnostics shows (ages in s, None when never received; rates in Hz; latencies in s)."""

    state: RunnerState
    reason: str
    episode: int
    instruction: str
    proposals: int
    inferences: int
    achieved_rate_hz: float
    latency_last_s: float | None
    latency_p50_s: float | None
    latency_max_s: float | None
    frames_dropped: int
    frames_malformed: int
    messages_malformed: int
    stale_results: int
    primitive_timeouts: int
    primitives_aborted: int
    faults: int
    object_in_hand: bool
    last_action: int | None
    ages: Mapping[str, float | None]


@dataclass
class _Frame:
    arrival: float
    stamp: float
    load: FrameLoader
    used: bool = False


@dataclass
class _InFlight:
    request: InferenceRequest
    started_wall: float
    hung: bool = False


@dataclass
class _Awaiting:
    action: int
    published: float
    previous_status_id: int | None
    claimed_id: int | None = None


@dataclass
class _Counters:
    proposals: int = 0
    inferences: int = 0
    frames_dropped: int = 0
    frames_malformed: int = 0
    messages_malformed: int = 0
    stale_results: int = 0
    primitive_timeouts: int = 0
    primitives_aborted: int = 0
    faults: int = 0
    latencies: deque[float] = dataclass_field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))
    proposal_times: deque[float] = dataclass_field(default_factory=lambda: deque(maxlen=64))


class PolicyRunner:
    """The policy node's decisions, driven by explicit times (see the module docstring)."""

    def __init__(self, config: PolicyNodeConfig, now: float) -> None:
        self.config = config
        self._frames: dict[Camera, _Frame | None] = dict.fromkeys(Camera)
        self._joints_time: float | None = None
        self._joints_stamp: float | None = None
        self._joints: dict[str, float] = {}
        self._odom: OdometryData | None = None
        self._odom_time: float | None = None
        self._odom_stamp: float | None = None
        self._refusals = RefusalMemory()
        self._object_in_hand = False
        self._status_time: float | None = None
        self._last_status_id: int | None = None
        self._instruction: str | None = None
        self._instruction_time = now
        self._episode = 0
        self._policy_episode = 0  # the episode the policy's state belongs to
        self._episode_ended = False
        self._fault: str | None = None
        self._in_flight: _InFlight | None = None
        self._awaiting: _Awaiting | None = None
        self._override: int | None = None
        self._step_done: float | None = None
        self._last_start: float | None = None
        self._latest_time = now
        self._last_action: int | None = None
        self._requests = 0
        self._n = _Counters()
        if config.instruction.strip():
            self.on_instruction(now, config.instruction)

    def reconfigure(self, config: PolicyNodeConfig) -> None:
        """Apply validated new parameters (the start-up-only ones are ignored by the node)."""
        self.config = config

    # ------------------------------------------------------------------ inputs
    def _see_time(self, now: float) -> None:
        """Notice a node clock that jumped back (a simulator reset restarts sim time): every stored time is
        then in the future, so frames are dropped (an old frame would look fresh) and the rate limit and
        step timing restart; the instruction is kept with its age restarted."""
        if now < self._latest_time - CLOCK_JUMP_S:
            _log.warning("clock jumped back from %.3f s to %.3f s: dropping frames and restarting timers",
                         self._latest_time, now)
            self._frames = dict.fromkeys(Camera)
            self._last_start = None
            self._step_done = now
            self._instruction_time = now
        self._latest_time = now

    def on_frame(self, camera: Camera, now: float, load: FrameLoader, stamp: float | None = None) -> None:
        """Keep the latest frame of ``camera`` (``stamp``: its capture time, None = ``now``); an unused one it
        replaces counts as dropped."""
        self._see_time(now)
        previous = self._frames[camera]
        if previous is not None and not previous.used:
            self._n.frames_dropped += 1
        self._frames[camera] = _Frame(now, now if stamp is None else stamp, load)

    def on_odometry(self, now: float, odom: OdometryData, stamp: float | None = None) -> None:
        """The base pose the refusal memory keys on (``stamp``: its measurement time, None = ``now``)."""
        self._odom, self._odom_time = odom, now
        self._odom_stamp = now if stamp is None else stamp

    def on_joint_states(self, now: float, joints: Mapping[str, float], stamp: float | None = None) -> None:
        """Object-in-hand from the configured joint (a message without it leaves the flag unchanged); the
        joints are merged (a message may name a subset) for the refusal memory's pose."""
        self._joints_time = now
        self._joints_stamp = now if stamp is None else stamp
        self._joints.update(joints)
        position = joints.get(self.config.object_in_hand_joint)
        if position is not None:
            low, high = self.config.object_in_hand_range
            self._object_in_hand = low <= position <= high

    def on_instruction(self, now: float, text: str) -> None:
        """A goal. A different text starts a new episode; the same one only refreshes its age (even after
        ``end``: repeating a finished task takes an episode reset first); an empty one withdraws the goal."""
        text = text.strip()
        if not text:
            self._instruction = None
            return
        if text == self._instruction:
            self._instruction_time = now
            return
        self._begin_episode(now)
        self._instruction, self._instruction_time = text, now
        _log.info("episode %d: %r", self._episode, text)

    def set_goal(self, now: float, text: str) -> None:
        """The ``instruction`` parameter was set: a new episode with goal ``text`` (even the text of the
        running one: an explicit episode start), or, empty, the goal withdrawn (an inference running now
        is then discarded, so nothing is proposed from here on until the next goal)."""
        text = text.strip()
        if not text:
            self._instruction = None
            _log.info("goal withdrawn")
            return
        self._begin_episode(now)
        self._instruction, self._instruction_time = text, now
        _log.info("episode %d: %r (parameter)", self._episode, text)

    def on_episode_reset(self, now: float) -> None:
        """End the episode; nothing is proposed until the next instruction.

        A simulator publishes the reset and the new episode's instruction together, and the executor may
        hand them over in either order: an instruction that arrived within ``RESET_GRACE_S`` of the reset
        (or after it, on a clock that jumped back at the reset) belongs to the new episode and is kept.
        """
        self._begin_episode(now)
        if self._instruction is not None and now - self._instruction_time <= RESET_GRACE_S:
            _log.info("episode reset: keeping the instruction that came with it: %r", self._instruction)
            return
        self._instruction = None
        _log.info("episode reset: waiting for an instruction")

    def _begin_episode(self, now: float) -> None:
        self._episode += 1
        self._episode_ended = False
        self._fault = None
        self._awaiting = None
        self._override = None
        self._refusals.clear()
        self._step_done = now  # the first observation comes from frames stamped after this

    def on_primitive_status(self, now: float, status: PrimitiveStatus) -> None:
        """The monitor's progress report; completes our step on DONE/ABORTED of our proposal."""
        self._status_time = now
        waiting = self._awaiting
        if (waiting is not None and waiting.claimed_id is None and status.action == waiting.action
                and status.proposal_id != waiting.previous_status_id):
            waiting.claimed_id = status.proposal_id
            self._decided(status)
        self._last_status_id = status.proposal_id
        if (waiting is None or waiting.claimed_id != status.proposal_id
                or status.phase not in (PrimitivePhase.DONE, PrimitivePhase.ABORTED)):
            return
        if status.phase is PrimitivePhase.ABORTED:
            self._n.primitives_aborted += 1
            _log.warning("proposal %d (action %d) aborted: %s", status.proposal_id, status.action,
                         status.reason)
        if 0 <= status.executed < NUM_ACTIONS and status.executed != waiting.action:
            self._override = status.executed
        self._awaiting = None
        # The step ended when the monitor saw the robot at rest: at the stamp of its latest odometry, which
        # may be ahead of this node's clock (a clock behind on /clock must not let a pre-step frame through).
        self._step_done = now if status.stamp is None else max(now, status.stamp)

    def _decided(self, status: PrimitiveStatus) -> None:
        """The deciding status of our proposal: tell the refusal memory what the shield did with it."""
        if not status.verdict:  # a fail-safe refusal (or the deciding status was lost): nothing learned
            self._refusals.discard()
        elif status.phase is PrimitivePhase.ABORTED:
            self._refusals.executed(None)
        else:
            self._refusals.executed(status.executed)

    def on_malformed(self, what: str, reason: str) -> None:
        """A message (joint_states, primitive status, ...) was dropped by its conversion."""
        self._n.messages_malformed += 1
        _log.warning("dropped malformed %s: %s", what, reason)

    # ------------------------------------------------------------------ decisions
    def fault(self) -> str | None:
        """Why the policy may not act at all (it raised, or an inference hangs), or None."""
        flight = self._in_flight
        if flight is not None and flight.hung:
            return (f"inference {flight.request.request_id} hangs (> inference_timeout_s "
                    f"{self.config.inference_timeout_s:g} s)")
        return self._fault

    def _blocker(self, now: float) -> tuple[RunnerState, str] | None:
        """The first rule that forbids starting an inference now, or None."""
        c = self.config
        flight = self._in_flight
        fault = self.fault()
        if fault is not None:
            return RunnerState.FAULT, fault
        if self._episode_ended:
            return RunnerState.EPISODE_ENDED, ("episode ended (action end): waiting for an episode reset "
                                               "or a new instruction")
        if self._instruction is None:
            return RunnerState.NO_INSTRUCTION, "no instruction: publish safevla/instruction"
        if c.max_instruction_age_s > 0 and now - self._instruction_time > c.max_instruction_age_s:
            age = now - self._instruction_time
            return RunnerState.STALE_INSTRUCTION, (f"instruction stale ({age:.2f} s > "
                                                   f"{c.max_instruction_age_s:g} s)")
        for camera, frame in self._frames.items():
            if frame is None:
                return RunnerState.STALE_IMAGES, f"{camera.value} never received"
            if now - frame.arrival > c.max_image_age_s:
                return RunnerState.STALE_IMAGES, (f"{camera.value} stale ({now - frame.arrival:.2f} s > "
                                                  f"{c.max_image_age_s:g} s)")
        if flight is not None:
            return RunnerState.INFERRING, f"inference {flight.request.request_id} running"
        if self._awaiting is not None:
            return RunnerState.EXECUTING, f"monitor executing action {self._awaiting.action}"
        waiting_for = self._inputs_before_step(now)
        if waiting_for:
            return RunnerState.WAITING_FRAME, f"waiting for {', '.join(waiting_for)} stamped after the last step"
        if self._last_start is not None and now - self._last_start < 1.0 / c.max_rate_hz:
            return RunnerState.RATE_LIMITED, f"max_rate_hz {c.max_rate_hz:g}"
        return None

    def _inputs_before_step(self, now: float) -> list[str]:
        """The inputs not stamped within [end of the previous step, now + CLOCK_JUMP_S] (rule 7)."""
        stamps = {camera.value: None if frame is None else frame.stamp for camera, frame in self._frames.items()}
        stamps.update(odom=self._odom_stamp, joint_states=self._joints_stamp)
        start = -float("inf") if self._step_done is None else self._step_done
        return [name for name, stamp in stamps.items()
                if stamp is not None and not start <= stamp <= now + CLOCK_JUMP_S]

    def _pose(self) -> RobotState | None:
        """The robot's pose from odometry and joint states (None before any odometry)."""
        if self._odom is None:
            return None
        defaults = RobotState()
        return RobotState(x=self._odom.x, y=self._odom.y, yaw=self._odom.yaw,
                          lift=self._joints.get("joint_lift", defaults.lift),
                          arm_extension=self._joints.get("wrist_extension", defaults.arm_extension))

    def _expire(self, now: float, wall: float) -> None:
        """Time-driven transitions: a primitive that never finished, an inference that hangs."""
        waiting = self._awaiting
        if waiting is not None and now - waiting.published > self.config.primitive_timeout_s:
            self._n.primitive_timeouts += 1
            _log.warning("no DONE/ABORTED for action %d within primitive_timeout_s %g: proposing again",
                         waiting.action, self.config.primitive_timeout_s)
            self._awaiting = None
            self._refusals.discard()
            self._step_done = now
        flight = self._in_flight
        timeout = self.config.inference_timeout_s
        if flight is not None and not flight.hung and wall - flight.started_wall > timeout:
            flight.hung = True
            self._n.faults += 1
            _log.error("inference %d hangs (> inference_timeout_s %g s): no action until it returns and the "
                       "episode is reset", flight.request.request_id, self.config.inference_timeout_s)

    def poll(self, now: float, wall: float) -> InferenceRequest | None:
        """The inference to start now, if any (it is then in flight until ``on_result``)."""
        self._see_time(now)
        self._expire(now, wall)
        if self._blocker(now) is not None:
            return None
        nav, manip = self._frames[Camera.NAV], self._frames[Camera.MANIP]
        assert nav is not None and manip is not None and self._instruction is not None  # checked by _blocker
        nav.used = manip.used = True
        pose = self._pose()
        mask = None if pose is None else self._refusals.mask(robot_pose(pose))
        self._requests += 1
        request = InferenceRequest(
            request_id=self._requests, episode=self._episode, reset=self._policy_episode != self._episode,
            executed_override=self._override, instruction=self._instruction, nav=nav.load, manip=manip.load,
            object_in_hand=self._object_in_hand, frame_times=(nav.arrival, manip.arrival),
            deterministic=self.config.deterministic,
            action_mask=None if mask is None else tuple(bool(m) for m in mask))
        self._in_flight = _InFlight(request, wall)
        self._last_start = now
        return request

    def on_result(self, now: float, wall: float, request: InferenceRequest,
                  outcome: StepOutcome | BaseException) -> DiscreteCommand | None:
        """The proposal to publish for a finished inference, or None (fault, stale, dropped).

        Raises:
            ValueError: ``request`` is not the one in flight (a wiring error).
        """
        flight = self._in_flight
        if flight is None or flight.request is not request:
            raise ValueError(f"result of request {request.request_id} that is not in flight")
        self._in_flight = None
        self._n.latencies.append(wall - flight.started_wall)
        if flight.hung:
            _log.warning("late result of hung inference %d discarded", request.request_id)
            if request.episode == self._episode:
                self._fault = (f"inference {request.request_id} hung (> inference_timeout_s "
                               f"{self.config.inference_timeout_s:g} s); reset the episode")
            return None
        if isinstance(outcome, MalformedFrame):
            self._n.frames_malformed += 1
            _log.warning("dropped malformed camera frame: %s", outcome.reason)
            return None
        if isinstance(outcome, BaseException):
            self._n.faults += 1
            if request.episode == self._episode:
                self._fault = f"policy raised {type(outcome).__name__}: {outcome}"
            _log.error("policy raised on request %d: %r", request.request_id, outcome)
            return None
        self._n.inferences += 1
        self._policy_episode = request.episode
        self._override = None
        if request.episode != self._episode:  # reset while it ran: the next request resets the policy
            return None
        if self._instruction is None:
            _log.info("result of request %d discarded: the goal was withdrawn while it ran", request.request_id)
            return None
        age = now - min(request.frame_times)
        if age > self.config.max_image_age_s:
            self._n.stale_results += 1
            _log.warning("result dropped: its frames are %.2f s old (> max_image_age_s %g)", age,
                         self.config.max_image_age_s)
            return None
        self._awaiting = _Awaiting(outcome.action_index, now, self._last_status_id)
        self._refusals.proposed(outcome.action_index)
        self._last_action = outcome.action_index
        self._episode_ended = outcome.action_index == END_ACTION
        self._n.proposals += 1
        self._n.proposal_times.append(now)
        return DiscreteCommand(outcome.action_index, outcome.probabilities)

    # ------------------------------------------------------------------ report
    def report(self, now: float) -> PolicyReport:
        """State, counters, latencies, achieved rate and input ages."""
        blocker = self._blocker(now)
        state, reason = blocker if blocker is not None else (RunnerState.READY, "ready to act")
        recent = [t for t in self._n.proposal_times if now - t <= _RATE_WINDOW_S]
        span = recent[-1] - recent[0] if recent else 0.0
        rate = (len(recent) - 1) / span if span > 0 else 0.0
        latencies = list(self._n.latencies)

        def age(t: float | None) -> float | None:
            return None if t is None else now - t

        ages = {camera.value: age(None if frame is None else frame.arrival)
                for camera, frame in self._frames.items()}
        ages.update(instruction=age(self._instruction_time if self._instruction is not None else None),
                    joint_states=age(self._joints_time), odom=age(self._odom_time),
                    primitive_status=age(self._status_time))
        n = self._n
        return PolicyReport(
            state, reason, self._episode, self._instruction or "", n.proposals, n.inferences, rate,
            latencies[-1] if latencies else None, statistics.median(latencies) if latencies else None,
            max(latencies) if latencies else None, n.frames_dropped, n.frames_malformed, n.messages_malformed,
            n.stale_results, n.primitive_timeouts, n.primitives_aborted, n.faults, self._object_in_hand,
            self._last_action, ages)


# ---------------------------------------------------------------------- execution


class _Output(Protocol):
    action_index: int
    probabilities: Any


class StepPolicy(Protocol):
    """What the runner needs of a policy (``policies.runtime.SafeVLAPolicy`` fits)."""

    def reset(self) -> None: ...

    def override_last_action(self, action_index: int) -> None: ...

    def select_action(self, observation: Any, action_mask: Any = None,
                      deterministic: bool = True) -> _Output: ...


def draw_action(rng: np.random.Generator, probabilities: np.ndarray) -> int:
    """One action drawn from a (normalised) distribution: the one draw per step that the policy node and
    sampled evaluation share, so the same generator state gives the same action in both."""
    return int(rng.choice(NUM_ACTIONS, p=probabilities))


class StepExecutor:
    """Runs one ``InferenceRequest`` on a policy (on the worker thread).

    Sampling (``deterministic`` false) draws from the returned distribution with a seeded NumPy generator and
    feeds the drawn action back to the policy, so the choice is reproducible without touching torch here.

    Args:
        policy: the model.
        make_observation: builds the policy's observation from keywords ``instruction``, ``nav_rgb``,
            ``manip_rgb`` and ``object_in_hand`` (``policies.runtime.PolicyObservation``).
        seed: of the sampling generator.
    """

    def __init__(self, policy: StepPolicy, make_observation: Callable[..., object], seed: int = 0) -> None:
        self.policy = policy
        self._make_observation = make_observation
        self._rng = np.random.default_rng(seed)

    def __call__(self, request: InferenceRequest) -> StepOutcome:
        """Decode, reset/feed back as asked, select.

        Raises:
            Exception: whatever the policy raises, and ValueError for a distribution that is not one.
        """
        try:
            nav, manip = request.nav(), request.manip()
        except MessageError as exc:
            return MalformedFrame(str(exc))
        if request.reset:
            self.policy.reset()
        elif request.executed_override is not None:
            self.policy.override_last_action(request.executed_override)
        observation = self._make_observation(instruction=request.instruction, nav_rgb=nav, manip_rgb=manip,
                                             object_in_hand=request.object_in_hand)
        mask = None if request.action_mask is None else np.array(request.action_mask, dtype=bool)
        output = self.policy.select_action(observation, action_mask=mask, deterministic=True)
        probabilities = np.asarray(output.probabilities, dtype=np.float64)
        total = probabilities.sum()
        if probabilities.shape != (NUM_ACTIONS,) or not np.all(np.isfinite(probabilities)) or \
                np.any(probabilities < 0) or abs(total - 1.0) > 1e-3:
            raise ValueError(f"policy returned an invalid distribution {probabilities.tolist()}")
        probabilities = probabilities / total
        action = int(output.action_index)
        if not request.deterministic:
            action = draw_action(self._rng, probabilities)
            if action != output.action_index:
                self.policy.override_last_action(action)
        return StepResult(action, tuple(float(p) for p in probabilities))


class InferenceWorker:
    """One daemon thread running one request at a time; finished ones are collected with ``take``.

    A daemon, so a hung model cannot keep the process from exiting.
    """

    def __init__(self, run: Callable[[InferenceRequest], StepOutcome],
                 name: str = "policy-inference") -> None:
        self._run = run
        self._requests: queue.Queue[InferenceRequest | None] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._finished: list[tuple[InferenceRequest, StepOutcome | BaseException]] = []
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A request is running (or queued to run)."""
        with self._lock:
            return self._busy

    def submit(self, request: InferenceRequest) -> None:
        """Start ``request``.

        Raises:
            RuntimeError: one is already running (the runner never allows that).
        """
        with self._lock:
            if self._busy:
                raise RuntimeError(f"request {request.request_id} submitted while another is running")
            self._busy = True
        self._requests.put_nowait(request)

    def take(self) -> list[tuple[InferenceRequest, StepOutcome | BaseException]]:
        """Requests finished since the last call, with their outcome or the exception they raised."""
        with self._lock:
            finished, self._finished = self._finished, []
        return finished

    def close(self, timeout: float = 1.0) -> bool:
        """Stop the thread after the running request; True if it stopped within ``timeout``."""
        try:
            self._requests.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while (request := self._requests.get()) is not None:
            outcome: StepOutcome | BaseException
            try:
                outcome = self._run(request)
            except Exception as exc:  # noqa: BLE001 - any model failure is reported, never acted upon
                outcome = exc
            with self._lock:
                self._finished.append((request, outcome))
                self._busy = False
