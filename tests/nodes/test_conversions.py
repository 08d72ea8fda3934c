"""Message conversions: every encoding round-trips, and every malformed message is rejected by name."""

from __future__ import annotations

import io
import json
import math
from typing import TypeVar

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from visualization_msgs.msg import Marker

from safevla_node.actions import NUM_ACTIONS
from safevla_node.errors import MessageError
from safevla_node.nodes import conversions as conv
from safevla_node.policy_runner import PolicyReport, RunnerState
from safevla_node.safety.monitor_types import OdometryData, PrimitiveStatus
from safevla_node.safety.primitives import ArmTrajectory, PrimitivePhase, TrajectoryPoint, wrap_angle
from safevla_node.safety.types import (
    Category,
    DiscreteCommand,
    ObjectState,
    TwistCommand,
    Verdict,
    VerdictKind,
)
from sim_bridge.interface import LaserScanData

settings.register_profile("conversions", max_examples=60, deadline=None)
settings.load_profile("conversions")

STAMP = conv.seconds_to_time(12.5)
T = TypeVar("T")
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
angles = st.floats(-math.pi, math.pi, exclude_max=True)


@given(finite, finite)
def test_twist_round_trips(v, w):
    back = conv.twist_from_msg(conv.twist_to_msg(TwistCommand(v, w)))
    assert (back.linear_x, back.angular_z) == (v, w)


@given(st.integers(0, 5), non_finite)
def test_twist_with_nan_or_inf_in_any_component_is_rejected(component, bad):
    msg = Twist()
    vector = msg.linear if component < 3 else msg.angular
    setattr(vector, "xyz"[component % 3], bad)
    with pytest.raises(MessageError, match="twist is not finite"):
        conv.twist_from_msg(msg)


distributions = st.lists(st.floats(0.01, 1.0), min_size=NUM_ACTIONS, max_size=NUM_ACTIONS).map(
    lambda w: tuple(x / sum(w) for x in w))


@given(st.integers(0, NUM_ACTIONS - 1), distributions)
def test_action_proposal_round_trips(index, probabilities):
    back = conv.decode_action_proposal(conv.encode_action_proposal(DiscreteCommand(index, probabilities)))
    assert back.action_index == index
    assert back.probabilities == pytest.approx(probabilities, abs=1e-6)


def test_action_proposal_without_distribution_is_encoded_one_hot():
    msg = conv.encode_action_proposal(DiscreteCommand(3))
    assert msg.layout.dim[0].label == "safevla_action_v1" and len(msg.data) == 21
    assert conv.decode_action_proposal(msg).probabilities[3] == 1.0


def _proposal(data=None, label="safevla_action_v1"):
    msg = conv.encode_action_proposal(DiscreteCommand(0))
    msg.layout.dim[0].label = label
    if data is not None:
        msg.data = data
    return msg


@pytest.mark.parametrize(("msg", "match"), [
    (_proposal(label="other"), r"label is 'other', expected 'safevla_action_v1'"),
    (_proposal([0.0, 1.0]), r"has 2 values, expected 21"),
    (_proposal([0.0, math.nan] + [0.0] * 19), r"contains NaN or Inf"),
    (_proposal([1.5, 1.0] + [0.0] * 19), r"index 1.5 is not an integer"),
    (_proposal([20.0, 1.0] + [0.0] * 19), r"index 20.0 is not an integer in \[0, 20\)"),
    (_proposal([0.0, 0.5] + [0.0] * 19), r"sum to 0.500000, expected 1"),
    (_proposal([0.0, 1.5, -0.5] + [0.0] * 18), r"outside \[0, 1\]"),
])
def test_malformed_action_proposal_is_rejected(msg, match):
    with pytest.raises(MessageError, match=match):
        conv.decode_action_proposal(msg)


def over_the_wire(msg: T) -> T:
    """``msg`` serialised and read back as DDS carries it: a Python message object holds a float32 field as
    a Python float, and only its serialisation rounds it."""
    return deserialize_message(serialize_message(msg), type(msg))


ranges = st.lists(st.one_of(st.floats(0.0, 30.0, width=32), st.just(math.inf)), min_size=2, max_size=50)


@given(ranges, st.floats(-3.0, 0.0), st.floats(0.001, 0.1), st.floats(0.0, 0.5), st.floats(30.0, 100.0))
def test_scan_round_trips_exactly_keeping_no_return_entries(values, angle_min, increment, range_min, range_max):
    # Exactly: the monitor must place every hit where the in-process evaluation places it (a float64 angle
    # against its float32 copy moved dozens of obstacle cells).
    scan = LaserScanData(angle_min, increment, range_min, range_max, np.asarray(values, dtype=np.float64))
    back = conv.scan_from_msg(over_the_wire(conv.scan_to_msg(scan, STAMP, "laser")), "laser")
    np.testing.assert_array_equal(back.ranges, scan.ranges)
    assert back.ranges.dtype == scan.ranges.dtype == np.float32
    fields = ("angle_min", "angle_increment", "range_min", "range_max")
    assert [getattr(back, f) for f in fields] == [getattr(scan, f) for f in fields]
    assert scan.angle_min == pytest.approx(angle_min, abs=1e-6)  # float32: rounded, not changed


def _scan_msg():
    return conv.scan_to_msg(LaserScanData(-1.0, 0.1, 0.05, 10.0, np.ones(21, np.float32)), STAMP, "laser")


def test_scan_with_the_wrong_number_of_ranges_is_rejected():
    msg = _scan_msg()
    msg.ranges = [1.0] * 5
    with pytest.raises(MessageError, match="scan has 5 ranges but its angles imply 21"):
        conv.scan_from_msg(msg, "laser")


@pytest.mark.parametrize(("field", "value", "match"), [
    ("angle_increment", math.nan, "scan angle/range fields is not finite"),
    ("angle_increment", 0.0, "scan geometry invalid"),
    ("range_max", 0.01, "scan geometry invalid"),
])
def test_scan_with_bad_geometry_is_rejected(field, value, match):
    msg = _scan_msg()
    setattr(msg, field, value)
    with pytest.raises(MessageError, match=match):
        conv.scan_from_msg(msg, "laser")


def test_scan_in_another_frame_is_rejected():
    with pytest.raises(MessageError, match="scan frame_id is 'laser', expected 'base_laser'"):
        conv.scan_from_msg(_scan_msg(), "base_laser")


@given(finite, finite, angles, finite, finite)
def test_odometry_round_trips(x, y, yaw, v, w):
    back = conv.odom_from_msg(conv.odom_to_msg(OdometryData(x, y, yaw, v, w), STAMP), "odom", "base_link")
    assert (back.x, back.y, back.linear_x, back.angular_z) == (x, y, v, w)
    assert wrap_angle(back.yaw - yaw) == pytest.approx(0.0, abs=1e-9)


@given(non_finite)
def test_odometry_with_a_non_finite_position_is_rejected(bad):
    msg = conv.odom_to_msg(OdometryData(0.0, 0.0, 0.0), STAMP)
    msg.pose.pose.position.y = bad
    with pytest.raises(MessageError, match="odometry pose/twist is not finite"):
        conv.odom_from_msg(msg, "odom", "base_link")


def test_odometry_with_a_zero_quaternion_or_wrong_child_frame_is_rejected():
    msg = conv.odom_to_msg(OdometryData(0.0, 0.0, 0.0), STAMP)
    msg.pose.pose.orientation.w = 0.0
    with pytest.raises(MessageError, match="not a unit quaternion"):
        conv.odom_from_msg(msg, "odom", "base_link")
    msg = conv.odom_to_msg(OdometryData(0.0, 0.0, 0.0), STAMP, base_frame="base_footprint")
    with pytest.raises(MessageError, match="child_frame_id is 'base_footprint', expected 'base_link'"):
        conv.odom_from_msg(msg, "odom", "base_link")


joint_maps = st.dictionaries(st.sampled_from(["joint_lift", "wrist_extension", "joint_wrist_yaw",
                                              "gripper_aperture"]), finite)


@given(joint_maps)
def test_joint_states_round_trip(joints):
    assert conv.joint_state_from_msg(conv.joint_state_to_msg(joints, STAMP)) == joints


@pytest.mark.parametrize(("msg", "match"), [
    (JointState(name=["a", "b"], position=[1.0]), "1 positions for 2 names"),
    (JointState(name=["a"], position=[math.nan]), "joint_states positions is not finite"),
    (JointState(name=["a"], position=[1.0], velocity=[1.0, 2.0]), "2 velocity values for 1 names"),
    (JointState(name=["a", "a"], position=[1.0, 2.0]), "names are not unique"),
])
def test_malformed_joint_states_are_rejected(msg, match):
    with pytest.raises(MessageError, match=match):
        conv.joint_state_from_msg(msg)


objects = st.builds(
    ObjectState,
    object_id=st.text(min_size=1, max_size=12), object_type=st.sampled_from(["Apple", "Knife", "Bowl"]),
    position=st.tuples(finite, finite, finite),
    rotation_deg=st.tuples(st.floats(-179, 179), st.floats(-80, 80), st.floats(-179, 179)),
    size=st.tuples(st.floats(0, 3), st.floats(0, 3), st.floats(0, 3)),
    name=st.text(max_size=12), visible=st.booleans(), held=st.booleans(), unstable=st.booleans(),
    static=st.booleans())


@given(st.lists(objects, max_size=5))
def test_objects_round_trip(items):
    back = conv.objects_from_msg(conv.objects_to_msg(items, STAMP), "odom")
    assert len(back) == len(items)
    for got, want in zip(back, items):
        for name in ("object_id", "object_type", "name", "visible", "held", "unstable", "static"):
            assert getattr(got, name) == getattr(want, name)
        assert got.position == want.position and got.size == want.size
        assert got.rotation_deg == pytest.approx(want.rotation_deg, abs=1e-6)


def test_objects_with_bad_text_or_type_are_rejected():
    msg = conv.objects_to_msg([ObjectState("a", "Apple", (0.0, 0.0, 0.0))], STAMP)
    msg.markers[0].text = json.dumps({"id": "a"})
    with pytest.raises(MessageError, match="text is not the expected JSON"):
        conv.objects_from_msg(msg, "odom")
    msg = conv.objects_to_msg([ObjectState("a", "Apple", (0.0, 0.0, 0.0))], STAMP)
    msg.markers[0].type = Marker.SPHERE
    with pytest.raises(MessageError, match="expected CUBE"):
        conv.objects_from_msg(msg, "odom")


def test_a_deleteall_marker_is_skipped():
    msg = conv.objects_to_msg([ObjectState("a", "Apple", (0.0, 0.0, 0.0))], STAMP)
    msg.markers.insert(0, Marker(action=Marker.DELETEALL))
    assert [o.object_id for o in conv.objects_from_msg(msg, "odom")] == ["a"]


trajectories = st.integers(1, 4).flatmap(lambda n: st.builds(
    ArmTrajectory,
    joint_names=st.just(tuple(f"j{i}" for i in range(n))),
    points=st.lists(st.tuples(st.tuples(*[finite] * n), st.floats(0, 10)), min_size=1, max_size=4).map(
        lambda pts: tuple(TrajectoryPoint(p, t) for p, t in sorted(pts, key=lambda x: x[1])))))


@given(trajectories)
def test_trajectory_round_trips(trajectory):
    back = conv.trajectory_from_msg(conv.trajectory_to_msg(trajectory))
    assert back.joint_names == trajectory.joint_names
    for got, want in zip(back.points, trajectory.points, strict=True):
        assert got.positions == want.positions
        assert got.time_from_start == pytest.approx(want.time_from_start, abs=1e-9)


def test_malformed_trajectories_are_rejected():
    good = ArmTrajectory(("joint_lift",), (TrajectoryPoint((0.5,), 1.0), TrajectoryPoint((0.6,), 2.0)))
    msg = conv.trajectory_to_msg(good)
    msg.points[1].time_from_start = conv.seconds_to_duration(0.5)
    with pytest.raises(MessageError, match="point 1 time_from_start 0.5 s is negative or decreasing"):
        conv.trajectory_from_msg(msg)
    msg = conv.trajectory_to_msg(good)
    msg.points[0].positions = [0.5, 0.1]
    with pytest.raises(MessageError, match="point 0 has 2 positions for 1 joints"):
        conv.trajectory_from_msg(msg)
    msg = conv.trajectory_to_msg(good)
    msg.points = []
    with pytest.raises(MessageError, match="trajectory has no points"):
        conv.trajectory_from_msg(msg)


depth_maps = st.lists(st.floats(0.125, 10.0, width=32), min_size=12, max_size=12).map(
    lambda v: np.asarray(v, np.float32).reshape(3, 4))


@given(depth_maps)
def test_depth_round_trips_in_metres_and_millimetres(depth):
    info = conv.camera_info_to_msg(4, 3, 100.0, 100.0, 2.0, 1.5, STAMP, "cam")
    metres = conv.depth_from_msg(conv.depth_to_msg(depth, STAMP, "cam"), info, "cam")
    np.testing.assert_array_equal(metres.depth_m, depth)
    millimetres = conv.depth_from_msg(conv.depth_to_msg(depth, STAMP, "cam", "16UC1"), info, "cam")
    np.testing.assert_allclose(millimetres.depth_m, depth, atol=0.0006)
    assert (metres.fx, metres.fy, metres.cx, metres.cy) == (100.0, 100.0, 2.0, 1.5)


def test_depth_without_return_becomes_nan():
    depth = np.array([[0.0, math.inf], [1.0, math.nan]], np.float32)
    info = conv.camera_info_to_msg(2, 2, 1.0, 1.0, 1.0, 1.0, STAMP, "cam")
    got = conv.depth_from_msg(conv.depth_to_msg(depth, STAMP, "cam"), info, "cam").depth_m
    assert np.isnan(got).tolist() == [[True, True], [False, True]]


def test_malformed_depth_is_rejected():
    info = conv.camera_info_to_msg(4, 3, 100.0, 100.0, 2.0, 1.5, STAMP, "cam")
    image = conv.depth_to_msg(np.ones((3, 4), np.float32), STAMP, "cam")
    image.encoding = "rgb8"
    with pytest.raises(MessageError, match="depth encoding 'rgb8' unsupported"):
        conv.depth_from_msg(image, info, "cam")
    image = conv.depth_to_msg(np.ones((3, 4), np.float32), STAMP, "cam")
    image.data = bytes(10)
    with pytest.raises(MessageError, match="depth data has 10 bytes"):
        conv.depth_from_msg(image, info, "cam")
    odd_step = conv.depth_to_msg(np.ones((1, 2), np.float32), STAMP, "cam", "16UC1")
    odd_step.step, odd_step.data = 5, bytes(5)  # rows of 5 bytes cannot hold whole 2-byte pixels
    with pytest.raises(MessageError, match="a multiple of 2"):
        conv.depth_from_msg(odd_step, conv.camera_info_to_msg(2, 1, 1.0, 1.0, 1.0, 1.0, STAMP, "cam"), "cam")
    small = conv.camera_info_to_msg(2, 2, 100.0, 100.0, 1.0, 1.0, STAMP, "cam")
    with pytest.raises(MessageError, match="depth image is 4x3 but camera_info says 2x2"):
        conv.depth_from_msg(conv.depth_to_msg(np.ones((3, 4), np.float32), STAMP, "cam"), small, "cam")


@given(st.sampled_from(list(PrimitivePhase)), st.integers(0, 10**6), st.integers(-1, 19), st.integers(-1, 19),
       st.text(max_size=30))
def test_primitive_status_round_trips(phase, proposal_id, action, executed, reason):
    status = PrimitiveStatus(phase, proposal_id, action, executed, reason)
    assert conv.primitive_status_from_msg(conv.primitive_status_to_msg(status)) == status


def test_malformed_primitive_status_is_rejected():
    with pytest.raises(MessageError, match="primitive status is not the expected JSON"):
        conv.primitive_status_from_msg(String(data='{"state": "flying"}'))


@given(st.sampled_from(list(VerdictKind)), st.sampled_from(list(Category)), st.booleans(),
       st.dictionaries(st.sampled_from(list(Category)), st.floats(0.001, 1.0)))
def test_safety_state_round_trips(kind, category, estop, risk):
    replacement = 2 if kind is VerdictKind.REPLACE else None
    scale = 0.0 if kind is VerdictKind.STOP else 0.5
    verdict = Verdict(kind, category, "why", scale, replacement, risk)
    back, back_estop = conv.verdict_from_status(conv.verdict_to_status(verdict, estop))
    assert (back.kind, back.category, back.reason, back.scale, back.replacement) == (
        kind, category, "why", scale, replacement)
    assert back.risk == pytest.approx({c: round(r, 3) for c, r in risk.items() if round(r, 3) > 0})
    assert back_estop is estop


@given(st.floats(0, 1e6))
def test_time_round_trips_to_the_nanosecond(seconds):
    assert conv.time_to_seconds(conv.seconds_to_time(seconds)) == pytest.approx(seconds, abs=1e-9)


# --- colour images ------------------------------------------------------------------------------------------

_rgb_arrays = st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1)).map(
    lambda hws: np.random.default_rng(hws[2]).integers(0, 256, (hws[0], hws[1], 3), dtype=np.uint8))


@settings(max_examples=50, deadline=None)
@given(_rgb_arrays)
def test_rgb_image_round_trips(rgb):
    msg = conv.rgb_to_msg(rgb, conv.seconds_to_time(1.5), "camera_color_optical_frame")
    assert (msg.encoding, msg.step) == ("rgb8", rgb.shape[1] * 3)
    np.testing.assert_array_equal(conv.rgb_from_msg(msg), rgb)


@settings(max_examples=30, deadline=None)
@given(_rgb_arrays, st.integers(0, 5))
def test_bgra_image_with_row_padding_decodes_to_rgb(rgb, padding):
    h, w, _ = rgb.shape
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((h, w, 1), 255, np.uint8)], axis=2).reshape(h, w * 4)
    msg = Image(height=h, width=w, encoding="bgra8", step=w * 4 + padding)
    msg.data = np.concatenate([bgra, np.zeros((h, padding), np.uint8)], axis=1).tobytes()
    np.testing.assert_array_equal(conv.rgb_from_msg(msg), rgb)


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (Image(height=2, width=2, encoding="mono8", step=2, data=bytes(4)), "encoding 'mono8' unsupported"),
        (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(5)), "5 bytes, expected"),
        (Image(height=2, width=2, encoding="rgb8", step=4, data=bytes(8)), "malformed"),
    ],
)
def test_malformed_rgb_image_is_rejected(msg, match):
    with pytest.raises(MessageError, match=match):
        conv.rgb_from_msg(msg)


def test_png_compressed_image_decodes_exactly_and_garbage_is_rejected():
    from PIL import Image as PILImage

    rgb = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    png = CompressedImage(format="png", data=buffer.getvalue())
    np.testing.assert_array_equal(conv.compressed_rgb_from_msg(png), rgb)
    with pytest.raises(MessageError, match="cannot be decoded"):
        conv.compressed_rgb_from_msg(CompressedImage(format="jpeg", data=b"not an image"))


@given(st.text(alphabet=st.characters(categories=("L", "N", "P", "Zs")), max_size=40),
       st.sampled_from(["", " ", "\n", "\t "]))
def test_instruction_is_read_without_surrounding_whitespace(text, padding):
    assert conv.instruction_from_msg(String(data=padding + text + padding)) == text.strip()


def test_instruction_with_control_characters_is_rejected():
    with pytest.raises(MessageError, match=r"instruction contains control characters \['\\x00'\]"):
        conv.instruction_from_msg(String(data="find\x00 the mug"))


_ages = st.one_of(st.none(), st.floats(0.0, 1e4))
_counts = st.integers(0, 10**6)
policy_reports = st.builds(
    PolicyReport, state=st.sampled_from(list(RunnerState)), reason=st.text(max_size=30), episode=_counts,
    instruction=st.text(max_size=30), proposals=_counts, inferences=_counts,
    achieved_rate_hz=st.floats(0.0, 100.0), latency_last_s=_ages, latency_p50_s=_ages, latency_max_s=_ages,
    frames_dropped=_counts, frames_malformed=_counts, messages_malformed=_counts, stale_results=_counts,
    primitive_timeouts=_counts, primitives_aborted=_counts, faults=_counts, object_in_hand=st.booleans(),
    last_action=st.one_of(st.none(), st.integers(0, NUM_ACTIONS - 1)),
    ages=st.fixed_dictionaries({name: _ages for name in ("nav_camera", "manip_camera", "instruction",
                                                         "joint_states", "primitive_status")}))


@given(policy_reports)
def test_policy_diagnostics_carry_every_report_field_with_the_state_s_level(report):
    msg = conv.policy_diagnostics_to_msg(report, STAMP, "policy_node")
    (status,) = msg.status
    values = {kv.key: kv.value for kv in status.values}
    warn = (RunnerState.STALE_IMAGES, RunnerState.STALE_INSTRUCTION, RunnerState.NO_INSTRUCTION)
    expected_level = DiagnosticStatus.ERROR if report.state is RunnerState.FAULT else \
        DiagnosticStatus.WARN if report.state in warn else DiagnosticStatus.OK
    assert status.level == expected_level and status.message == report.reason
    assert status.name == "policy_node: policy" and msg.header.stamp == STAMP
    assert values["state"] == report.state.value and values["instruction"] == report.instruction
    for key in ("episode", "proposals", "inferences", "frames_dropped", "frames_malformed",
                "messages_malformed", "stale_results", "primitive_timeouts", "primitives_aborted", "faults"):
        assert int(values[key]) == getattr(report, key)
    assert float(values["achieved_rate_hz"]) == pytest.approx(report.achieved_rate_hz, abs=1e-3)
    for key, field_name in (("inference_latency_p50_s", "latency_p50_s"),
                            ("inference_latency_max_s", "latency_max_s")):
        value = getattr(report, field_name)
        if value is None:
            assert values[key] == "never"
        else:
            assert float(values[key]) == pytest.approx(value, abs=1e-4)
    for name, age in report.ages.items():
        if age is None:
            assert values[f"age_s.{name}"] == "never"
        else:
            assert float(values[f"age_s.{name}"]) == pytest.approx(age, abs=1e-3)
    assert values["last_action"] == ("" if report.last_action is None else str(report.last_action))
