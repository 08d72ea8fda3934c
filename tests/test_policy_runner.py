"""The policy node's core: when it acts (rate, one in flight, step-synchronous with the monitor, watchdog,
episodes) with injected clocks, and how a real SafeVLA policy is run on the worker thread, crash and hang
included."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from safevla_node.actions import ACTION_BY_CODE, NUM_ACTIONS
from safevla_node.errors import ConfigError, MessageError
from safevla_node.policy_runner import (
    Camera,
    InferenceRequest,
    InferenceWorker,
    MalformedFrame,
    PolicyNodeConfig,
    RESET_GRACE_S,
    PolicyRunner,
    RunnerState,
    StepExecutor,
    StepResult,
)
from safevla_node.safety.monitor_types import OdometryData, PrimitiveStatus
from safevla_node.safety.primitives import PrimitivePhase

CONFIG = PolicyNodeConfig(max_rate_hz=2.0, max_image_age_s=1.0, primitive_timeout_s=3.0,
                          inference_timeout_s=2.0)
END = ACTION_BY_CODE["end"].index
UNIFORM = tuple([1.0 / NUM_ACTIONS] * NUM_ACTIONS)
FRAME = np.zeros((224, 384, 3), np.uint8)


def result(action: int = 0) -> StepResult:
    return StepResult(action, UNIFORM)


def status(phase: PrimitivePhase, proposal_id: int, action: int = 0, executed: int | None = None,
           reason: str = "", verdict: str = "") -> PrimitiveStatus:
    return PrimitiveStatus(phase, proposal_id, action, action if executed is None else executed, reason,
                           verdict)


class Rig:
    """A runner with both cameras fed at the given time (node clock == wall clock unless told)."""

    def __init__(self, config: PolicyNodeConfig = CONFIG, instruction: str | None = "find the mug") -> None:
        self.runner = PolicyRunner(config, 0.0)
        if instruction is not None:
            self.runner.on_instruction(0.0, instruction)

    def frames(self, t: float, load=lambda: FRAME) -> None:
        for camera in Camera:
            self.runner.on_frame(camera, t, load)

    def poll(self, t: float, wall: float | None = None) -> InferenceRequest | None:
        return self.runner.poll(t, t if wall is None else wall)

    def step(self, t: float, action: int = 0):
        """Fresh frames at t, an inference started and finished at t; returns the proposal."""
        self.frames(t)
        request = self.poll(t)
        assert request is not None, self.runner.report(t)
        return request, self.runner.on_result(t, t, request, result(action))

    def state(self, t: float) -> RunnerState:
        return self.runner.report(t).state


def test_fresh_frames_and_an_instruction_start_one_inference():
    rig = Rig()
    rig.frames(0.1)
    request = rig.poll(0.1)
    assert request is not None and request.instruction == "find the mug" and request.reset
    assert request.executed_override is None and request.frame_times == (0.1, 0.1)
    command = rig.runner.on_result(0.2, 0.2, request, result(2))
    assert command.action_index == 2 and command.probabilities == UNIFORM
    assert rig.state(0.2) is RunnerState.EXECUTING


def test_no_instruction_starts_nothing():
    rig = Rig(instruction=None)
    rig.frames(0.1)
    assert rig.poll(0.1) is None
    report = rig.runner.report(0.1)
    assert report.state is RunnerState.NO_INSTRUCTION and report.ages["instruction"] is None


def test_an_empty_instruction_withdraws_the_goal():
    rig = Rig()
    rig.runner.on_instruction(0.05, "   ")
    rig.frames(0.1)
    assert rig.poll(0.1) is None and rig.state(0.1) is RunnerState.NO_INSTRUCTION


@pytest.mark.parametrize("camera", list(Camera))
def test_a_stale_camera_starts_nothing_and_is_named(camera):
    rig = Rig()
    rig.frames(0.0)
    rig.runner.on_frame(Camera.NAV if camera is Camera.MANIP else Camera.MANIP, 1.5, lambda: FRAME)
    assert rig.poll(1.5) is None
    report = rig.runner.report(1.5)
    assert report.state is RunnerState.STALE_IMAGES
    assert report.reason == f"{camera.value} stale (1.50 s > 1 s)"


def test_a_camera_never_received_starts_nothing():
    rig = Rig()
    rig.runner.on_frame(Camera.NAV, 0.1, lambda: FRAME)
    assert rig.poll(0.1) is None
    assert rig.runner.report(0.1).reason == "manip_camera never received"


def test_the_instruction_is_latched_by_default_and_expires_when_an_age_is_set():
    latched = Rig()
    assert latched.step(100.0)[1] is not None
    expiring = Rig(replace(CONFIG, max_instruction_age_s=5.0))
    expiring.frames(6.0)
    assert expiring.poll(6.0) is None and expiring.state(6.0) is RunnerState.STALE_INSTRUCTION
    expiring.runner.on_instruction(6.1, "find the mug")  # the same goal re-published: refreshed, same episode
    assert expiring.runner.report(6.1).episode == 1
    assert expiring.poll(6.1) is not None


def test_at_most_one_inference_is_in_flight():
    rig = Rig()
    rig.frames(0.1)
    assert rig.poll(0.1) is not None
    for t in (0.7, 1.3, 1.9):  # the rate would allow more, fresh frames keep arriving
        rig.frames(t)
        assert rig.poll(t) is None
        assert rig.state(t) is RunnerState.INFERRING


def test_only_the_latest_frame_is_used_and_replaced_ones_count_as_dropped():
    rig = Rig()
    used = []
    for i in range(5):
        rig.runner.on_frame(Camera.NAV, 0.1 * i, lambda i=i: used.append(i) or FRAME)
        rig.runner.on_frame(Camera.MANIP, 0.1 * i, lambda: FRAME)
    request = rig.poll(0.45)
    request.nav()
    assert used == [4]
    assert rig.runner.report(0.45).frames_dropped == 8


def test_inference_starts_are_spaced_by_the_maximum_rate():
    rig = Rig()
    starts = []
    proposal_id = 0
    for i in range(60):  # 3 s at 20 Hz with the monitor answering at once
        t = 0.05 * i
        rig.frames(t)
        request = rig.poll(t)
        if request is not None:
            starts.append(t)
            command = rig.runner.on_result(t, t, request, result())
            proposal_id += 1
            rig.runner.on_primitive_status(t, status(PrimitivePhase.DONE, proposal_id, command.action_index))
    assert np.diff(starts) == pytest.approx([0.5] * (len(starts) - 1))
    assert len(starts) == 6
    assert rig.runner.report(2.95).achieved_rate_hz == pytest.approx(2.0)


def test_the_step_ends_only_with_done_or_aborted_of_its_own_proposal():
    rig = Rig()
    rig.runner.on_primitive_status(0.0, status(PrimitivePhase.DONE, 7, 3))  # the monitor has counted 7 before
    _, command = rig.step(0.1, action=1)
    runner = rig.runner
    runner.on_primitive_status(0.2, status(PrimitivePhase.DONE, 7, 3))  # an old status again
    runner.on_primitive_status(0.3, status(PrimitivePhase.RUNNING, 8, 2))  # another proposer's action
    runner.on_primitive_status(0.4, status(PrimitivePhase.DONE, 8, 2))
    rig.frames(1.0)
    assert rig.poll(1.0) is None and rig.state(1.0) is RunnerState.EXECUTING
    runner.on_primitive_status(1.1, status(PrimitivePhase.RUNNING, 9, command.action_index))
    runner.on_primitive_status(1.2, status(PrimitivePhase.DONE, 9, command.action_index))
    rig.frames(1.25)
    assert rig.poll(1.25) is not None


def test_an_aborted_primitive_also_ends_the_step_and_is_counted():
    rig = Rig()
    _, command = rig.step(0.1)
    rig.runner.on_primitive_status(0.2, status(PrimitivePhase.ABORTED, 1, command.action_index,
                                               reason="refused by the shield"))
    rig.frames(0.6)
    assert rig.poll(0.6) is not None
    assert rig.runner.report(0.6).primitives_aborted == 1


def test_without_an_answer_from_the_monitor_it_proposes_again_after_the_primitive_timeout():
    rig = Rig()
    rig.step(0.1)
    rig.frames(3.0)
    assert rig.poll(3.0) is None
    rig.frames(3.15)
    assert rig.poll(3.2) is None  # 3.1 s after the proposal: timed out now, frames must be newer than that
    rig.frames(3.25)
    assert rig.poll(3.25) is not None
    assert rig.runner.report(3.25).primitive_timeouts == 1


def test_an_observation_must_be_newer_than_the_end_of_the_step():
    rig = Rig()
    _, command = rig.step(0.1)
    rig.frames(1.0)
    rig.runner.on_primitive_status(1.05, status(PrimitivePhase.DONE, 1, command.action_index))
    assert rig.poll(1.1) is None and rig.state(1.1) is RunnerState.WAITING_FRAME
    rig.frames(1.12)
    assert rig.poll(1.12) is not None


def test_a_frame_captured_before_the_step_ended_is_not_acted_on_even_when_handled_after_it():
    """Discrete simulation: the pre-step world is published up to the instant the action runs, and a
    pre-step frame may be handled at the very clock value at which the DONE is handled."""
    rig = Rig()
    _, command = rig.step(0.1)
    rig.runner.on_primitive_status(2.0, status(PrimitivePhase.DONE, 1, command.action_index))
    for camera in Camera:
        rig.runner.on_frame(camera, 2.0, lambda: FRAME, stamp=1.9)
    assert rig.poll(2.0) is None and rig.state(2.0) is RunnerState.WAITING_FRAME
    assert rig.runner.report(2.0).reason == ("waiting for nav_camera, manip_camera stamped after the last "
                                             "step")
    for camera in Camera:
        rig.runner.on_frame(camera, 2.0, lambda: FRAME, stamp=2.0)  # captured when the step ended
    assert rig.poll(2.0) is not None


def test_a_frame_stamped_in_the_future_waits_for_the_clock_and_an_old_episode_frame_is_never_used():
    rig = Rig()
    for camera in Camera:
        rig.runner.on_frame(camera, 0.1, lambda: FRAME, stamp=0.3)  # handled before /clock reached it
    assert rig.poll(0.1) is None and rig.state(0.1) is RunnerState.WAITING_FRAME
    assert rig.poll(0.3) is not None
    rig = Rig()
    rig.frames(0.05)  # a new episode's clock; then a frame of the old one arrives late on its topic
    rig.runner.on_frame(Camera.NAV, 0.06, lambda: FRAME, stamp=35.0)
    assert rig.poll(0.1) is None and rig.state(0.1) is RunnerState.WAITING_FRAME


def test_odometry_and_joint_states_must_be_stamped_after_the_step_once_received():
    rig = Rig()
    rig.runner.on_odometry(0.0, OdometryData(0.0, 0.0, 0.0), stamp=0.0)
    rig.runner.on_joint_states(0.0, {"joint_lift": 0.6}, stamp=0.0)
    _, command = rig.step(0.1)
    rig.runner.on_primitive_status(1.0, status(PrimitivePhase.DONE, 1, command.action_index))
    rig.frames(1.1)
    assert rig.poll(1.1) is None
    assert rig.runner.report(1.1).reason == "waiting for odom, joint_states stamped after the last step"
    rig.runner.on_odometry(1.15, OdometryData(0.2, 0.0, 0.0), stamp=1.1)
    rig.runner.on_joint_states(1.15, {"joint_lift": 0.6}, stamp=1.1)
    assert rig.poll(1.15) is not None


class Refusals:
    """A rig whose robot reports a pose, proposing ``action`` and hearing the monitor's decision."""

    def __init__(self) -> None:
        self.rig = Rig()
        self.t = 0.0
        self.proposals = 0
        self.pose = OdometryData(1.0, 2.0, 0.3)

    def propose(self, action: int) -> InferenceRequest:
        self.t += 1.0
        self.rig.runner.on_odometry(self.t, self.pose, stamp=self.t)
        self.rig.runner.on_joint_states(self.t, {"joint_lift": 0.6, "wrist_extension": 0.1}, stamp=self.t)
        request, command = self.rig.step(self.t, action)
        assert command is not None and command.action_index == action
        self.proposals += 1
        return request

    def decide(self, phase: PrimitivePhase, action: int, executed: int | None = None, verdict: str = "allow"):
        runner, t, n = self.rig.runner, self.t + 0.1, self.proposals
        runner.on_primitive_status(t, status(phase, n, action, executed, verdict=verdict))
        if phase is PrimitivePhase.RUNNING:  # a later status of the same proposal ends it (no verdict)
            runner.on_primitive_status(t, status(PrimitivePhase.DONE, n, action, executed))

    def masked(self) -> set[int]:
        request = self.propose(1)
        self.decide(PrimitivePhase.RUNNING, 1)
        mask = request.action_mask
        return set() if mask is None else {i for i, allowed in enumerate(mask) if not allowed}


def test_an_action_the_shield_stopped_is_masked_while_the_robot_stays_put():
    bench = Refusals()
    assert bench.propose(0).action_mask is None
    bench.decide(PrimitivePhase.ABORTED, 0, verdict="stop")
    assert bench.masked() == {0}


def test_an_action_the_shield_replaced_is_masked_and_a_limited_one_is_not():
    bench = Refusals()
    bench.propose(0)
    bench.decide(PrimitivePhase.RUNNING, 0, executed=3, verdict="replace")
    bench.propose(6)
    bench.decide(PrimitivePhase.RUNNING, 6, verdict="limit")
    assert bench.masked() == {0}


def test_a_refusal_is_forgotten_once_the_robot_moved():
    bench = Refusals()
    bench.propose(0)
    bench.decide(PrimitivePhase.ABORTED, 0, verdict="stop")
    bench.pose = OdometryData(1.2, 2.0, 0.3)
    assert bench.masked() == set()


def test_a_fail_safe_refusal_without_a_verdict_is_not_remembered():
    bench = Refusals()
    bench.propose(0)
    bench.decide(PrimitivePhase.ABORTED, 0, verdict="")  # e.g. refused: scan stale
    assert bench.masked() == set()


def test_a_new_episode_forgets_the_refusals():
    bench = Refusals()
    bench.propose(0)
    bench.decide(PrimitivePhase.ABORTED, 0, verdict="stop")
    bench.rig.runner.on_instruction(bench.t + 0.2, "pick up the apple")
    assert bench.masked() == set()


def test_without_odometry_nothing_is_masked():
    rig = Rig()
    _, command = rig.step(0.1, action=0)
    rig.runner.on_primitive_status(0.2, status(PrimitivePhase.ABORTED, 1, 0, verdict="stop"))
    request, _ = rig.step(0.6)
    assert request.action_mask is None


def test_an_action_replaced_by_the_shield_is_fed_back_once():
    rig = Rig()
    rig.step(0.1, action=0)
    rig.runner.on_primitive_status(0.5, status(PrimitivePhase.DONE, 1, 0, executed=3))
    request, command = rig.step(0.6)
    assert request.executed_override == 3 and not request.reset
    rig.runner.on_primitive_status(0.7, status(PrimitivePhase.DONE, 2, command.action_index))
    request, _ = rig.step(1.2)
    assert request.executed_override is None


def test_end_stops_proposing_until_a_reset_or_a_different_instruction():
    rig = Rig()
    _, command = rig.step(0.1, action=END)
    assert command.action_index == END
    rig.runner.on_primitive_status(0.2, status(PrimitivePhase.DONE, 1, END))
    rig.frames(1.0)
    assert rig.poll(1.0) is None and rig.state(1.0) is RunnerState.EPISODE_ENDED
    rig.runner.on_instruction(1.1, "find the mug")  # the same goal again does not restart a finished task
    rig.frames(1.2)
    assert rig.poll(1.2) is None
    rig.runner.on_instruction(1.3, "pick up the apple")
    request, _ = rig.step(1.4)
    assert request.reset and request.instruction == "pick up the apple" and request.episode == 2


def test_an_episode_reset_waits_for_an_instruction_and_resets_the_policy():
    rig = Rig()
    rig.step(0.1)
    rig.runner.on_episode_reset(1.0)  # the instruction (t=0) is older than RESET_GRACE_S: it is withdrawn
    rig.frames(1.5)
    assert rig.poll(1.5) is None and rig.state(1.5) is RunnerState.NO_INSTRUCTION
    rig.runner.on_instruction(1.6, "find the mug")
    request, _ = rig.step(1.7)
    assert request.reset and request.episode == 3


def test_a_policy_exception_gives_no_action_and_faults_until_the_next_episode():
    rig = Rig()
    rig.frames(0.1)
    request = rig.poll(0.1)
    assert rig.runner.on_result(0.2, 0.2, request, RuntimeError("CUDA error: device-side assert")) is None
    rig.frames(1.0)
    assert rig.poll(1.0) is None
    report = rig.runner.report(1.0)
    assert report.state is RunnerState.FAULT and report.faults == 1
    assert report.reason == "policy raised RuntimeError: CUDA error: device-side assert"
    rig.runner.on_episode_reset(1.1)
    rig.runner.on_instruction(1.2, "find the mug")
    request, command = rig.step(1.3)
    assert request.reset and command is not None


def test_a_hung_inference_faults_blocks_every_other_and_its_late_result_is_discarded():
    rig = Rig()
    rig.frames(0.1)
    hung = rig.poll(0.1, wall=10.0)
    rig.frames(0.5)
    assert rig.poll(0.5, wall=12.5) is None  # 2.5 s of wall time > inference_timeout_s
    assert rig.runner.fault() == "inference 1 hangs (> inference_timeout_s 2 s)"
    rig.runner.on_episode_reset(0.6)  # a new episode cannot start while the model is still busy
    rig.runner.on_instruction(0.7, "find the mug")
    rig.frames(0.8)
    assert rig.poll(0.8, wall=13.0) is None and rig.state(0.8) is RunnerState.FAULT
    assert rig.runner.on_result(0.9, 14.0, hung, result()) is None
    rig.frames(1.0)
    request = rig.poll(1.0, wall=14.1)
    assert request is not None and request.reset
    assert rig.runner.report(1.0).latency_max_s == pytest.approx(4.0)


def test_a_hang_within_the_episode_stays_a_fault_after_the_late_result():
    rig = Rig()
    rig.frames(0.1)
    hung = rig.poll(0.1, wall=0.0)
    rig.poll(0.2, wall=3.0)
    rig.runner.on_result(0.3, 3.5, hung, result())
    rig.frames(1.0)
    assert rig.poll(1.0, wall=4.0) is None
    assert rig.runner.report(1.0).reason == "inference 1 hung (> inference_timeout_s 2 s); reset the episode"


def test_a_result_whose_frames_went_stale_is_dropped():
    rig = Rig()
    rig.frames(0.1)
    request = rig.poll(0.1)
    assert rig.runner.on_result(1.2, 1.2, request, result()) is None
    report = rig.runner.report(1.2)
    assert report.stale_results == 1 and report.proposals == 0 and report.inferences == 1


def test_a_reset_during_inference_discards_its_result_and_resets_the_policy_next():
    rig = Rig()
    rig.frames(0.1)
    request = rig.poll(0.1)
    rig.runner.on_instruction(0.2, "pick up the apple")
    assert rig.runner.on_result(0.3, 0.3, request, result()) is None
    request, command = rig.step(0.6)  # max_rate_hz still counts from the discarded start
    assert request.reset and request.instruction == "pick up the apple" and command is not None


def test_a_malformed_frame_is_counted_and_the_pending_reset_is_kept():
    rig = Rig()
    rig.frames(0.1)
    request = rig.poll(0.1)
    assert rig.runner.on_result(0.1, 0.1, request, MalformedFrame("image data has 3 bytes")) is None
    request, command = rig.step(0.7)
    assert request.reset and command is not None
    assert rig.runner.report(0.7).frames_malformed == 1


def test_a_result_for_a_request_not_in_flight_is_a_wiring_error():
    rig = Rig()
    request, _ = rig.step(0.1)
    with pytest.raises(ValueError, match="result of request 1 that is not in flight"):
        rig.runner.on_result(0.2, 0.2, request, result())


def test_object_in_hand_follows_the_configured_aperture_range():
    rig = Rig()
    for aperture, held in ((0.1, False), (0.04, True), (0.0, False), (0.09, True)):
        rig.runner.on_joint_states(0.0, {"gripper_aperture": aperture, "joint_lift": 0.5})
        assert rig.runner.report(0.0).object_in_hand is held
    rig.runner.on_joint_states(0.0, {"joint_lift": 0.5})  # without the joint: unchanged
    assert rig.runner.report(0.0).object_in_hand is True
    request, _ = rig.step(0.1)
    assert request.object_in_hand


def test_the_report_carries_latencies_and_input_ages():
    rig = Rig()
    for i, latency in enumerate((0.1, 0.3, 0.2)):
        t = 1.0 * i
        rig.frames(t)
        rig.runner.on_joint_states(t, {"gripper_aperture": 0.1})
        request = rig.poll(t, wall=t)
        rig.runner.on_result(t, t + latency, request, result())
        rig.runner.on_primitive_status(t, status(PrimitivePhase.DONE, i + 1))
    report = rig.runner.report(2.5)
    latencies = (report.latency_last_s, report.latency_p50_s, report.latency_max_s)
    assert latencies == pytest.approx((0.2, 0.2, 0.3))
    assert report.ages == pytest.approx({"nav_camera": 0.5, "manip_camera": 0.5, "instruction": 2.5,
                                         "joint_states": 0.5, "odom": None, "primitive_status": 0.5})
    assert report.proposals == report.inferences == 3 and report.last_action == 0


@pytest.mark.parametrize(("overrides", "match"), [
    ({"max_rate_hz": 0.0}, r"max_rate_hz=0.0 is out of range"),
    ({"max_image_age_s": -1.0}, r"max_image_age_s=-1.0 is out of range"),
    ({"max_instruction_age_s": -0.1}, r"max_instruction_age_s=-0.1 is out of range"),
    ({"primitive_timeout_s": 0.0}, r"primitive_timeout_s=0.0 is out of range"),
    ({"inference_timeout_s": 0.0}, r"inference_timeout_s=0.0 is out of range"),
    ({"seed": -1}, r"seed=-1 is out of range"),
    ({"object_in_hand_range": (0.1, 0.01)}, r"object_in_hand_range=\(0.1, 0.01\) must be \[low, high\]"),
    ({"heartbeat_rate_hz": 0.5}, r"heartbeat_rate_hz=0.5 is out of range"),
])
def test_invalid_configuration_is_rejected_naming_the_field(overrides, match):
    with pytest.raises(ConfigError, match=match):
        PolicyNodeConfig(**overrides)


def test_default_heartbeat_gives_the_monitor_three_beats_per_timeout():
    """One lost or late heartbeat must not look like a dead policy to the monitor's default timeout."""
    from safevla_node.safety.monitor import SourceTimeouts

    beats = SourceTimeouts().policy_heartbeat * PolicyNodeConfig().heartbeat_rate_hz
    assert beats == pytest.approx(3.0)


# ---------------------------------------------------------------------- a real SafeVLA policy on the worker


def make_tiny_policy(seed: int = 0):
    """A tiny-config SafeVLA with random (seeded) weights, an image encoder and the word tokenizer, on CPU."""
    import torch

    from policies.configuration_safevla import load_policy_config
    from policies.encoders.dinov2 import PooledDinoFeatures
    from policies.modeling_safevla import SafeVLAModel
    from policies.processor_safevla import WordTokenizer
    from policies.runtime import SafeVLAPolicy
    from safevla_node.paths import config_path

    config = load_policy_config(config_path("policy_tiny.yaml"))
    torch.manual_seed(seed)
    encoder = PooledDinoFeatures(config.image_encoder, config.pooled_grid)
    return SafeVLAPolicy(config, SafeVLAModel(config), encoder, WordTokenizer.from_texts([]), device="cpu",
                         precision="fp32")


@pytest.fixture(scope="module")
def tiny_policy():
    """One intra-op thread: on a small, shared CPU more threads make each tiny step many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_tiny_policy()
    torch.set_num_threads(threads)


def request_for(rig: Rig, t: float, load=lambda: FRAME) -> InferenceRequest:
    rig.frames(t, load)
    request = rig.poll(t)
    assert request is not None
    return request


def run_on_worker(worker: InferenceWorker, request: InferenceRequest, timeout: float = 30.0):
    worker.submit(request)
    deadline = time.monotonic() + timeout
    while not (finished := worker.take()):
        assert time.monotonic() < deadline, "the worker did not finish"
        time.sleep(0.005)
    assert finished[0][0] is request
    return finished[0][1]


def test_a_real_tiny_policy_runs_on_the_worker_and_gives_a_distribution(tiny_policy):
    from policies.runtime import PolicyObservation

    worker = InferenceWorker(StepExecutor(tiny_policy, PolicyObservation))
    try:
        rig = Rig()
        rng = np.random.default_rng(0)
        request = request_for(rig, 0.1, lambda: rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
        outcome = run_on_worker(worker, request)
        assert isinstance(outcome, StepResult)
        assert sum(outcome.probabilities) == pytest.approx(1.0)
        assert outcome.action_index == int(np.argmax(outcome.probabilities))
        command = rig.runner.on_result(0.2, 0.2, request, outcome)
        assert command is not None and tiny_policy.steps == 1
    finally:
        assert worker.close()


def test_sampling_is_reproducible_with_the_seed_and_the_draw_is_fed_back(tiny_policy):
    from policies.runtime import PolicyObservation

    config = replace(CONFIG, deterministic=False)
    draws = []
    for _ in range(2):
        executor = StepExecutor(tiny_policy, PolicyObservation, seed=7)
        rig = Rig(config)
        actions = []
        for i in range(4):
            request = request_for(rig, float(i))
            outcome = executor(request)
            actions.append(outcome.action_index)
            assert tiny_policy._last_action == outcome.action_index  # what the model sees as previous action
            rig.runner.on_result(float(i), float(i), request, outcome)
            rig.runner.on_primitive_status(float(i), status(PrimitivePhase.DONE, i + 1, outcome.action_index))
        draws.append(actions)
    assert draws[0] == draws[1]


def test_the_refusal_mask_reaches_the_policy_and_the_sampled_draw_honours_it(tiny_policy):
    from policies.runtime import PolicyObservation

    for deterministic in (True, False):
        rig = Rig(replace(CONFIG, deterministic=deterministic))
        request = replace(request_for(rig, 0.1), action_mask=tuple(i != 0 and i != 3 for i in range(NUM_ACTIONS)))
        tiny_policy.reset()
        outcome = StepExecutor(tiny_policy, PolicyObservation, seed=3)(request)
        assert outcome.action_index not in (0, 3)
        assert outcome.probabilities[0] == outcome.probabilities[3] == 0.0


def test_a_malformed_frame_never_reaches_the_policy(tiny_policy):
    from policies.runtime import PolicyObservation

    def bad() -> np.ndarray:
        raise MessageError("image data has 3 bytes, expected step*height = 100")

    tiny_policy.reset()
    outcome = StepExecutor(tiny_policy, PolicyObservation)(request_for(Rig(), 0.1, bad))
    assert outcome == MalformedFrame("image data has 3 bytes, expected step*height = 100")
    assert tiny_policy.steps == 0


def _raising_policy_class():
    from policies.runtime import SafeVLAPolicy

    class ImageEncoderFails(SafeVLAPolicy):
        """A real policy whose image encoder fails the way a GPU fault surfaces in torch."""

        def _pooled(self, observation):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    return ImageEncoderFails


def _blocking_policy_class(release: threading.Event):
    from policies.runtime import SafeVLAPolicy

    class Blocks(SafeVLAPolicy):
        """A real policy whose encoder waits on a lock that is not released (a hang)."""

        def _pooled(self, observation):
            release.wait(30)
            return super()._pooled(observation)

    return Blocks


def test_a_policy_that_raises_gives_an_exception_outcome_and_no_action(tiny_policy):
    from policies.runtime import PolicyObservation

    policy = _raising_policy_class()(tiny_policy.config, tiny_policy.model, tiny_policy.image_encoder,
                                     tiny_policy.tokenizer, device="cpu", precision="fp32")
    worker = InferenceWorker(StepExecutor(policy, PolicyObservation))
    try:
        rig = Rig()
        request = request_for(rig, 0.1)
        outcome = run_on_worker(worker, request)
        assert isinstance(outcome, RuntimeError) and "illegal memory access" in str(outcome)
        assert rig.runner.on_result(0.2, 0.2, request, outcome) is None
        assert rig.runner.report(0.2).state is RunnerState.FAULT
    finally:
        assert worker.close()


def test_a_policy_that_hangs_is_detected_and_its_result_never_becomes_an_action(tiny_policy):
    from policies.runtime import PolicyObservation

    release = threading.Event()
    policy = _blocking_policy_class(release)(tiny_policy.config, tiny_policy.model, tiny_policy.image_encoder,
                                             tiny_policy.tokenizer, device="cpu", precision="fp32")
    worker = InferenceWorker(StepExecutor(policy, PolicyObservation))
    try:
        rig = Rig(replace(CONFIG, inference_timeout_s=0.2))
        rig.frames(0.1)
        start = time.monotonic()
        request = rig.runner.poll(0.1, start)
        worker.submit(request)
        time.sleep(0.3)
        rig.frames(0.4)
        assert rig.runner.poll(0.4, time.monotonic()) is None
        assert worker.busy and worker.take() == []
        assert rig.runner.fault() == "inference 1 hangs (> inference_timeout_s 0.2 s)"
        with pytest.raises(RuntimeError, match="submitted while another is running"):
            worker.submit(request)
        release.set()
        deadline = time.monotonic() + 30
        while not (finished := worker.take()):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        _, outcome = finished[0]
        assert isinstance(outcome, StepResult)  # the model did answer, late
        assert rig.runner.on_result(0.5, time.monotonic(), request, outcome) is None
        assert rig.runner.report(0.5).proposals == 0
    finally:
        release.set()
        assert worker.close()


@pytest.mark.parametrize("order", ["reset_first", "instruction_first", "instruction_first_clock_jumped_back"])
def test_an_instruction_that_comes_with_a_reset_starts_the_new_episode_in_either_order(order):
    rig = Rig()
    rig.step(40.0)  # the old episode, 40 s into sim time
    if order == "reset_first":
        rig.runner.on_episode_reset(45.0)
        rig.runner.on_instruction(45.01, "pick up the apple")
    elif order == "instruction_first":
        rig.runner.on_instruction(45.0, "pick up the apple")
        rig.runner.on_episode_reset(45.01)
    else:  # a simulator reset restarts sim time: the reset is handled at a smaller time than the instruction
        rig.runner.on_instruction(45.0, "pick up the apple")
        rig.runner.on_episode_reset(0.01)
    now = 45.1 if order != "instruction_first_clock_jumped_back" else 0.1
    rig.frames(now)
    request = rig.poll(now, wall=50.0)  # the wall clock never jumps back
    assert request is not None and request.reset and request.instruction == "pick up the apple"


def test_an_old_instruction_does_not_survive_an_episode_reset():
    rig = Rig()
    rig.step(0.1)
    rig.runner.on_episode_reset(0.1 + RESET_GRACE_S + 1.0)
    rig.frames(3.0)
    assert rig.poll(3.0) is None and rig.state(3.0) is RunnerState.NO_INSTRUCTION


def test_a_clock_that_jumps_back_drops_old_frames_and_restarts_the_rate_limit():
    """A simulator reset restarts sim time: frames from before would look fresh and the rate limit would
    hold until sim time caught up with the old episode."""
    rig = Rig()
    _, command = rig.step(40.0)
    rig.runner.on_primitive_status(40.5, status(PrimitivePhase.DONE, 1, command.action_index))
    rig.frames(40.6)  # last frames of the old episode
    assert rig.poll(0.05, wall=41.0) is None  # the clock jumped back: the old frames are gone
    assert rig.state(0.05) is RunnerState.STALE_IMAGES
    rig.frames(0.1)
    assert rig.poll(0.1, wall=41.1) is not None


def test_the_goal_parameter_starts_an_episode_even_with_the_same_text():
    rig = Rig()
    request, _ = rig.step(0.1)
    assert request.episode == 1
    rig.runner.set_goal(0.2, "find the mug")  # the same goal: an orchestrator's explicit new episode
    request, _ = rig.step(0.7)
    assert request.reset and request.episode == 2 and request.instruction == "find the mug"


def test_withdrawing_the_goal_discards_the_running_inference():
    rig = Rig()
    rig.frames(0.1)
    request = rig.poll(0.1)
    rig.runner.set_goal(0.15, "")
    assert rig.runner.on_result(0.2, 0.2, request, result(2)) is None
    rig.frames(0.3)
    assert rig.poll(0.3) is None and rig.state(0.3) is RunnerState.NO_INSTRUCTION


def test_a_step_ends_at_the_monitors_odometry_stamp_when_this_clock_lags_behind_it():
    """A node behind on /clock handles the DONE at an older clock value than the odometry that ended the
    step: a pre-step frame stamped in between must not be taken for a post-step one."""
    rig = Rig()
    _, command = rig.step(0.1)
    done = replace(status(PrimitivePhase.DONE, 1, command.action_index), stamp=2.0)
    rig.runner.on_primitive_status(1.5, done)
    for camera in Camera:
        rig.runner.on_frame(camera, 1.6, lambda: FRAME, stamp=1.9)  # the pre-step world, before the jump
    assert rig.poll(2.0) is None and rig.state(2.0) is RunnerState.WAITING_FRAME
    rig.frames(2.0)
    assert rig.poll(2.0) is not None
