"""Message <-> core type conversions: the only place where ROS messages are taken apart or built.

Every ``*_from_msg`` validates what it reads and raises ``MessageError`` naming the field and the bad value
(NaN/Inf, wrong array sizes, unknown encodings, wrong frames), so a node can drop the message, count it and
fail safe. The readers the offline bag audit shares live in ``safevla_node.msg_decode`` (no ROS import) and
are re-exported here. Every ``*_to_msg`` builds the message a ``*_from_msg`` reads back. The safety monitor, the sim
bridge, the policy node and the bag audit all use these, so every component agrees on the encodings below.

Encodings defined by this project (standard message types, no custom interfaces to build):

* ``safevla/action_proposal`` (std_msgs/Float32MultiArray): ``layout.dim[0].label == "safevla_action_v1"``,
  ``size == stride == 21``; ``data[0]`` is the chosen action index (an integer value), ``data[1:21]`` the
  policy's probabilities in action-index order (``safevla_node.actions.ACTIONS``), each in [0, 1] and summing
  to 1 within 1e-3.
* ``safevla/objects`` (visualization_msgs/MarkerArray): one CUBE marker per object, ``ns`` = object type,
  ``pose`` = centre and orientation (roll, pitch, yaw), ``scale`` = bounding-box size, ``text`` = JSON
  ``{"id", "name", "visible", "held", "unstable", "static"}``; a DELETEALL marker (RViz's "clear") is skipped.
* ``safevla/primitive_status`` (std_msgs/String): JSON ``{"state": "idle|running|done|aborted",
  "proposal_id", "action", "executed", "reason", "verdict", "stamp"}`` (``verdict`` and ``stamp``, a number
  or null, optional when decoding).
* ``safevla/instruction`` (std_msgs/String): the goal text; surrounding whitespace is ignored and an empty
  text withdraws the goal.
* ``safevla/safety_state`` (diagnostic_msgs/DiagnosticStatus): level OK/WARN/ERROR for allow/limit-or-replace/
  stop, ``message`` = reason, key/values ``verdict``, ``category``, ``reason``, ``scale``, ``replacement``,
  ``estop`` and ``risk.<category>`` for every category.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Quaternion, Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState, LaserScan
from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from safevla_node.actions import NUM_ACTIONS
from safevla_node.errors import MessageError
from safevla_node.msg_decode import (
    check_finite,
    check_frame,
    duration_to_seconds,
    joint_state_from_msg,
    odom_from_msg,
    quaternion_to_rpy,
    scan_from_msg,
    time_to_seconds,
    twist_from_msg,
)
from safevla_node.policy_runner import PolicyReport, RunnerState
from safevla_node.safety.monitor_types import (
    DepthFrame,
    MonitorReport,
    OdometryData,
    PrimitiveStatus,
    TickStats,
)
from safevla_node.safety.primitives import ArmTrajectory, PrimitivePhase, TrajectoryPoint
from safevla_node.safety.types import (
    Category,
    DiscreteCommand,
    ObjectState,
    TwistCommand,
    Verdict,
    VerdictKind,
)
from sim_bridge.interface import LaserScanData

__all__ = [
    "ACTION_PROPOSAL_LABEL",
    "ACTION_PROPOSAL_SIZE",
    "decode_action_proposal",
    "depth_from_msg",
    "depth_to_msg",
    "camera_info_to_msg",
    "compressed_rgb_from_msg",
    "rgb_from_msg",
    "rgb_to_msg",
    "diagnostics_to_msg",
    "duration_to_seconds",
    "encode_action_proposal",
    "instruction_from_msg",
    "joint_state_from_msg",
    "joint_state_to_msg",
    "objects_from_msg",
    "objects_to_msg",
    "odom_from_msg",
    "odom_to_msg",
    "policy_diagnostics_to_msg",
    "primitive_status_from_msg",
    "primitive_status_to_msg",
    "quaternion_to_rpy",
    "rpy_to_quaternion",
    "scan_from_msg",
    "scan_to_msg",
    "seconds_to_duration",
    "seconds_to_time",
    "time_to_seconds",
    "trajectory_from_msg",
    "trajectory_to_msg",
    "twist_from_msg",
    "twist_to_msg",
    "verdict_from_status",
    "verdict_to_status",
]

ACTION_PROPOSAL_LABEL = "safevla_action_v1"
ACTION_PROPOSAL_SIZE = 1 + NUM_ACTIONS
_PROBABILITY_SUM_TOLERANCE = 1e-3


# --- time ----------------------------------------------------------------------------------------------


def seconds_to_time(seconds: float) -> Time:
    """Float seconds (>= 0) as builtin_interfaces/Time."""
    nanoseconds = round(seconds * 1e9)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def seconds_to_duration(seconds: float) -> Duration:
    """Float seconds as builtin_interfaces/Duration."""
    nanoseconds = round(seconds * 1e9)
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


# --- orientation ---------------------------------------------------------------------------------------


def rpy_to_quaternion(roll: float, pitch: float, yaw: float) -> Quaternion:
    """Roll, pitch, yaw (rad, fixed axes x-y-z, i.e. R = Rz(yaw) Ry(pitch) Rx(roll)) as a quaternion."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return Quaternion(x=sr * cp * cy - cr * sp * sy, y=cr * sp * cy + sr * cp * sy,
                      z=cr * cp * sy - sr * sp * cy, w=cr * cp * cy + sr * sp * sy)


# --- commands ------------------------------------------------------------------------------------------


def twist_to_msg(command: TwistCommand) -> Twist:
    """The Twist of a base command."""
    msg = Twist()
    msg.linear.x = float(command.linear_x)
    msg.angular.z = float(command.angular_z)
    return msg


def encode_action_proposal(command: DiscreteCommand) -> Float32MultiArray:
    """The ``safevla_action_v1`` encoding (see the module docstring); a missing distribution is encoded
    as one-hot on the chosen action."""
    if not 0 <= command.action_index < NUM_ACTIONS:
        raise MessageError(f"action index {command.action_index} out of range [0, {NUM_ACTIONS})")
    probabilities = command.probabilities
    if probabilities is None:
        probabilities = tuple(float(i == command.action_index) for i in range(NUM_ACTIONS))
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=ACTION_PROPOSAL_LABEL, size=ACTION_PROPOSAL_SIZE,
                                          stride=ACTION_PROPOSAL_SIZE)]
    msg.data = [float(command.action_index), *map(float, probabilities)]
    return msg


def decode_action_proposal(msg: Float32MultiArray) -> DiscreteCommand:
    """A discrete action proposal.

    Raises:
        MessageError: wrong label or size, a non-integer or out-of-range index, or probabilities that are
            not finite, not in [0, 1] or do not sum to 1.
    """
    label = msg.layout.dim[0].label if msg.layout.dim else None
    if label != ACTION_PROPOSAL_LABEL:
        raise MessageError(f"action proposal layout.dim[0].label is {label!r}, "
                           f"expected {ACTION_PROPOSAL_LABEL!r}")
    data = np.asarray(msg.data, dtype=np.float64)
    if data.shape != (ACTION_PROPOSAL_SIZE,):
        raise MessageError(f"action proposal has {data.size} values, expected {ACTION_PROPOSAL_SIZE}")
    if not np.all(np.isfinite(data)):
        raise MessageError(f"action proposal contains NaN or Inf: {data.tolist()}")
    index = float(data[0])
    if index != round(index) or not 0 <= index < NUM_ACTIONS:
        raise MessageError(f"action proposal index {index!r} is not an integer in [0, {NUM_ACTIONS})")
    probabilities = data[1:]
    if np.any(probabilities < 0) or np.any(probabilities > 1):
        raise MessageError(f"action proposal probabilities outside [0, 1]: {probabilities.tolist()}")
    if abs(probabilities.sum() - 1.0) > _PROBABILITY_SUM_TOLERANCE:
        raise MessageError(f"action proposal probabilities sum to {probabilities.sum():.6f}, expected 1")
    return DiscreteCommand(int(index), tuple(float(p) for p in probabilities))


def trajectory_from_msg(msg: JointTrajectory) -> ArmTrajectory:
    """Joint names and, per point, positions and time_from_start (velocities are not forwarded).

    Raises:
        MessageError: no joints or points, duplicate names, a point whose positions do not match the joints,
            non-finite positions, or time_from_start negative or decreasing.
    """
    names = tuple(msg.joint_names)
    if not names or len(set(names)) != len(names):
        raise MessageError(f"trajectory joint_names must be non-empty and unique, got {list(names)}")
    if not msg.points:
        raise MessageError("trajectory has no points (an empty trajectory is not forwarded; "
                           "use ~/estop to stop)")
    points = []
    previous = 0.0
    for i, point in enumerate(msg.points):
        if len(point.positions) != len(names):
            raise MessageError(f"trajectory point {i} has {len(point.positions)} positions "
                               f"for {len(names)} joints")
        check_finite(f"trajectory point {i} positions", *point.positions)
        t = duration_to_seconds(point.time_from_start)
        if t < previous:
            raise MessageError(f"trajectory point {i} time_from_start {t} s is negative or decreasing")
        previous = t
        points.append(TrajectoryPoint(tuple(float(p) for p in point.positions), t))
    return ArmTrajectory(names, tuple(points))


def trajectory_to_msg(trajectory: ArmTrajectory, stamp: Time | None = None) -> JointTrajectory:
    """The JointTrajectory of an arm trajectory (a zero stamp means "start now" to a controller)."""
    msg = JointTrajectory()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.joint_names = list(trajectory.joint_names)
    msg.points = [JointTrajectoryPoint(positions=list(p.positions),
                                       time_from_start=seconds_to_duration(p.time_from_start))
                  for p in trajectory.points]
    return msg


def instruction_from_msg(msg: String) -> str:
    """The goal text of ``safevla/instruction``, without surrounding whitespace ("" withdraws the goal).

    Raises:
        MessageError: control characters other than whitespace (a binary payload sent by mistake).
    """
    text = msg.data.strip()
    bad = sorted({c for c in text if not c.isprintable() and not c.isspace()})
    if bad:
        raise MessageError(f"instruction contains control characters {bad!r}: {text[:80]!r}")
    return text


# --- sensors -------------------------------------------------------------------------------------------


def scan_to_msg(scan: LaserScanData, stamp: Time, frame_id: str) -> LaserScan:
    """The LaserScan of a planar scan."""
    msg = LaserScan()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.angle_min = float(scan.angle_min)
    msg.angle_increment = float(scan.angle_increment)
    msg.angle_max = float(scan.angle_min + scan.angle_increment * (len(scan.ranges) - 1))
    msg.range_min, msg.range_max = float(scan.range_min), float(scan.range_max)
    msg.ranges = scan.ranges.tolist()  # float32 already (LaserScanData)
    return msg


def odom_to_msg(
    odom: OdometryData, stamp: Time, odom_frame: str = "odom", base_frame: str = "base_link"
) -> Odometry:
    """The Odometry of a planar pose and velocity."""
    msg = Odometry()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, odom_frame, base_frame
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(odom.x), float(odom.y)
    msg.pose.pose.orientation = rpy_to_quaternion(0.0, 0.0, odom.yaw)
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = float(odom.linear_x), float(odom.angular_z)
    return msg


def joint_state_to_msg(joints: Mapping[str, float], stamp: Time) -> JointState:
    """The JointState of joint positions."""
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(joints)
    msg.position = [float(v) for v in joints.values()]
    return msg


def camera_info_to_msg(width: int, height: int, fx: float, fy: float, cx: float, cy: float, stamp: Time,
                       frame_id: str) -> CameraInfo:
    """A pinhole CameraInfo without distortion."""
    msg = CameraInfo()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.width, msg.height = width, height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


_DEPTH_DTYPES = {"16UC1": (np.dtype(np.uint16), 1e-3), "mono16": (np.dtype(np.uint16), 1e-3),
                 "32FC1": (np.dtype(np.float32), 1.0)}


def depth_from_msg(image: Image, info: CameraInfo, expected_frame: str) -> DepthFrame:
    """A depth image in metres (invalid pixels, i.e. 0 or non-finite, become NaN) with its intrinsics.

    Raises:
        MessageError: wrong frame, an encoding other than 16UC1 (mm) / 32FC1 (m), a data size that does not
            match height x step, an image size that differs from camera_info, or invalid intrinsics.
    """
    check_frame("depth image frame_id", image.header.frame_id, expected_frame)
    check_frame("camera_info frame_id", info.header.frame_id, expected_frame)
    if image.encoding not in _DEPTH_DTYPES:
        raise MessageError(f"depth encoding {image.encoding!r} unsupported; expected 16UC1 (mm) or 32FC1 (m)")
    dtype, scale = _DEPTH_DTYPES[image.encoding]
    if (image.width, image.height) != (info.width, info.height):
        raise MessageError(f"depth image is {image.width}x{image.height} but camera_info says "
                           f"{info.width}x{info.height}")
    row_bytes = image.width * dtype.itemsize
    if image.step < row_bytes or image.step % dtype.itemsize or len(image.data) != image.height * image.step:
        raise MessageError(f"depth data has {len(image.data)} bytes, expected height {image.height} x step "
                           f"{image.step} (>= {row_bytes}, a multiple of {dtype.itemsize})")
    fx, fy, cx, cy = info.k[0], info.k[4], info.k[2], info.k[5]
    check_finite("camera_info k", fx, fy, cx, cy)
    if fx <= 0 or fy <= 0:
        raise MessageError(f"camera_info focal lengths must be positive, got fx={fx}, fy={fy}")
    raw = np.frombuffer(bytes(image.data), dtype=dtype.newbyteorder(">" if image.is_bigendian else "<"))
    rows = raw.reshape(image.height, image.step // dtype.itemsize)[:, : image.width]
    depth = rows.astype(np.float32) * np.float32(scale)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return DepthFrame(depth, fx, fy, cx, cy)


def depth_to_msg(depth_m: np.ndarray, stamp: Time, frame_id: str, encoding: str = "32FC1") -> Image:
    """An Image of a depth map in metres, as 32FC1 (m) or 16UC1 (mm, NaN becomes 0)."""
    if encoding not in ("32FC1", "16UC1"):
        raise MessageError(f"depth encoding {encoding!r} unsupported; use 32FC1 or 16UC1")
    if encoding == "16UC1":
        pixels = np.nan_to_num(np.asarray(depth_m) * 1000.0, nan=0.0, posinf=0.0).round().astype("<u2")
    else:
        pixels = np.asarray(depth_m, dtype="<f4")
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width = pixels.shape
    msg.encoding, msg.is_bigendian = encoding, 0
    msg.step = pixels.shape[1] * pixels.itemsize
    msg.data = pixels.tobytes()
    return msg


# --- colour images -------------------------------------------------------------------------------------

_RGB_CHANNEL_ORDER = {"rgb8": (0, 1, 2), "bgr8": (2, 1, 0), "rgba8": (0, 1, 2), "bgra8": (2, 1, 0)}


def rgb_to_msg(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """An rgb8 Image of an (H, W, 3) uint8 array."""
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise MessageError(f"rgb image must be (H, W, 3) uint8, got shape {pixels.shape}")
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width = pixels.shape[:2]
    msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, pixels.shape[1] * 3
    msg.data = pixels.tobytes()
    return msg


def rgb_from_msg(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8/bgr8/rgba8/bgra8 Image (row padding allowed)."""
    order = _RGB_CHANNEL_ORDER.get(msg.encoding)
    if order is None:
        raise MessageError(f"image encoding {msg.encoding!r} unsupported; use one of {sorted(_RGB_CHANNEL_ORDER)}")
    channels = 4 if msg.encoding.endswith("a8") else 3
    if msg.height == 0 or msg.width == 0 or msg.step < msg.width * channels:
        raise MessageError(f"image {msg.width}x{msg.height} with step {msg.step} is malformed")
    if len(msg.data) != msg.step * msg.height:
        raise MessageError(f"image data has {len(msg.data)} bytes, expected step*height = {msg.step * msg.height}")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def compressed_rgb_from_msg(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a JPEG or PNG CompressedImage (image_transport's ``compressed``)."""
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(bytes(msg.data))) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MessageError(f"compressed image (format {msg.format!r}) cannot be decoded: {exc}") from None


# --- labelled objects ----------------------------------------------------------------------------------

_OBJECT_FLAGS = ("visible", "held", "unstable", "static")


def objects_to_msg(objects: Sequence[ObjectState], stamp: Time, frame_id: str = "odom") -> MarkerArray:
    """One CUBE marker per object (see the module docstring)."""
    msg = MarkerArray()
    for i, obj in enumerate(objects):
        marker = Marker()
        marker.header.stamp, marker.header.frame_id = stamp, frame_id
        marker.ns, marker.id = obj.object_type, i
        marker.type, marker.action = Marker.CUBE, Marker.ADD
        marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = map(float, obj.position)
        marker.pose.orientation = rpy_to_quaternion(*(math.radians(a) for a in obj.rotation_deg))
        marker.scale.x, marker.scale.y, marker.scale.z = map(float, obj.size)
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = (0.2, 0.8, 0.2, 0.6) if obj.visible \
            else (0.5, 0.5, 0.5, 0.4)
        marker.text = json.dumps({"id": obj.object_id, "name": obj.name,
                                  **{flag: getattr(obj, flag) for flag in _OBJECT_FLAGS}})
        msg.markers.append(marker)
    return msg


def objects_from_msg(msg: MarkerArray, expected_frame: str) -> tuple[ObjectState, ...]:
    """The objects of a ``safevla/objects`` message.

    Raises:
        MessageError: a marker that is not a CUBE ADD (or a DELETEALL), in another frame, with non-finite
            or negative geometry, or whose text is not the JSON described in the module docstring.
    """
    objects = []
    for i, marker in enumerate(msg.markers):
        if marker.action == Marker.DELETEALL:
            continue
        if marker.type != Marker.CUBE or marker.action != Marker.ADD:
            raise MessageError(f"object marker {i} has type {marker.type}, action {marker.action}; "
                               f"expected CUBE ({Marker.CUBE}) ADD ({Marker.ADD})")
        check_frame(f"object marker {i} frame_id", marker.header.frame_id, expected_frame)
        p, s = marker.pose.position, marker.scale
        check_finite(f"object marker {i} position/scale", p.x, p.y, p.z, s.x, s.y, s.z)
        if min(s.x, s.y, s.z) < 0:
            raise MessageError(f"object marker {i} has a negative size {(s.x, s.y, s.z)}")
        rpy = quaternion_to_rpy(marker.pose.orientation, f"object marker {i} orientation")
        try:
            meta = json.loads(marker.text)
            object_id, name = meta["id"], meta["name"]
            flags = {flag: meta[flag] for flag in _OBJECT_FLAGS}
        except (ValueError, KeyError, TypeError) as exc:
            raise MessageError(f"object marker {i} text is not the expected JSON with keys "
                               f"{['id', 'name', *_OBJECT_FLAGS]}: {marker.text!r} ({exc})") from None
        if not isinstance(object_id, str) or not isinstance(name, str) or not all(
                isinstance(v, bool) for v in flags.values()):
            raise MessageError(f"object marker {i} text has wrong types (id/name strings, flags booleans): "
                               f"{marker.text!r}")
        objects.append(ObjectState(object_id=object_id, object_type=marker.ns, position=(p.x, p.y, p.z),
                                   rotation_deg=tuple(math.degrees(a) for a in rpy),  # type: ignore[arg-type]
                                   size=(s.x, s.y, s.z), name=name, **flags))
    return tuple(objects)


# --- monitor outputs -----------------------------------------------------------------------------------


def primitive_status_to_msg(status: PrimitiveStatus) -> String:
    """The JSON of a primitive status (see the module docstring)."""
    return String(data=json.dumps({"state": status.phase.value, "proposal_id": status.proposal_id,
                                   "action": status.action, "executed": status.executed,
                                   "reason": status.reason, "verdict": status.verdict, "stamp": status.stamp}))


def primitive_status_from_msg(msg: String) -> PrimitiveStatus:
    """A primitive status.

    Raises:
        MessageError: not the JSON described in the module docstring.
    """
    try:
        data = json.loads(msg.data)
        stamp = data.get("stamp")
        return PrimitiveStatus(PrimitivePhase(data["state"]), int(data["proposal_id"]), int(data["action"]),
                               int(data["executed"]), str(data["reason"]), str(data.get("verdict", "")),
                               None if stamp is None else float(stamp))
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError(f"primitive status is not the expected JSON: {msg.data!r} ({exc})") from None


_LEVELS = {VerdictKind.ALLOW: DiagnosticStatus.OK, VerdictKind.LIMIT: DiagnosticStatus.WARN,
           VerdictKind.REPLACE: DiagnosticStatus.WARN, VerdictKind.STOP: DiagnosticStatus.ERROR}


def verdict_to_status(verdict: Verdict, estop: bool, name: str = "safevla_safety_state") -> DiagnosticStatus:
    """The ``safevla/safety_state`` status of a verdict (see the module docstring)."""
    values = {
        "verdict": verdict.kind.name.lower(),
        "category": verdict.category.value if verdict.category else "",
        "reason": verdict.reason,
        "scale": f"{verdict.scale:.3f}",
        "replacement": "" if verdict.replacement is None else str(verdict.replacement),
        "estop": str(estop).lower(),
        **{f"risk.{c.value}": f"{verdict.risk.get(c, 0.0):.3f}" for c in Category},
    }
    return DiagnosticStatus(level=_LEVELS[verdict.kind], name=name,
                            message=verdict.reason or verdict.kind.name.lower(),
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def verdict_from_status(status: DiagnosticStatus) -> tuple[Verdict, bool]:
    """The verdict and e-stop flag of a ``safevla/safety_state`` status.

    Raises:
        MessageError: a missing key or a value that does not parse.
    """
    values = {kv.key: kv.value for kv in status.values}
    try:
        risk = {c: float(values[f"risk.{c.value}"]) for c in Category}
        category = Category(values["category"]) if values["category"] else None
        replacement = int(values["replacement"]) if values["replacement"] else None
        verdict = Verdict(VerdictKind[values["verdict"].upper()], category, values["reason"],
                          float(values["scale"]), replacement, {c: r for c, r in risk.items() if r > 0.0})
        return verdict, values["estop"] == "true"
    except (KeyError, ValueError) as exc:
        raise MessageError(f"safety state status is malformed: {values} ({exc})") from None


def diagnostics_to_msg(
    report: MonitorReport, stats: TickStats, stamp: Time, node_name: str
) -> DiagnosticArray:
    """/diagnostics: one status for the monitor (verdict, e-stop, tick timing) and one per input source."""
    verdict = report.verdict
    main_values = {
        "verdict": verdict.kind.name.lower(),
        "category": verdict.category.value if verdict.category else "",
        "reason": verdict.reason,
        "estop": str(report.estop).lower(),
        "estop_reason": report.estop_reason,
        "primitive": report.primitive.phase.value,
        "primitive_proposal_id": str(report.primitive.proposal_id),
        "ticks": str(stats.ticks),
        "tick_period_last_s": f"{stats.last_period:.4f}",
        "tick_period_max_s": f"{stats.max_period:.4f}",
        "tick_duration_last_s": f"{stats.last_duration:.5f}",
        "tick_duration_max_s": f"{stats.max_duration:.5f}",
        "late_ticks": str(stats.late_ticks),
    }
    level = DiagnosticStatus.ERROR if report.estop else _LEVELS[verdict.kind]
    statuses = [DiagnosticStatus(level=level, name=f"{node_name}: monitor", hardware_id=node_name,
                                 message=verdict.reason or verdict.kind.name.lower(),
                                 values=[KeyValue(key=k, value=v) for k, v in main_values.items()])]
    for src in report.sources:
        if src.stale:
            level = DiagnosticStatus.ERROR if src.required else DiagnosticStatus.WARN
            message = "never received" if src.age is None else f"stale ({src.age:.2f} s > {src.timeout:g} s)"
        elif src.dropped:
            level, message = DiagnosticStatus.WARN, f"{src.dropped} malformed message(s) dropped"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        values = {"age_s": "never" if src.age is None else f"{src.age:.3f}",
                  "required": str(src.required).lower(),
                  "timeout_s": "" if src.timeout is None else f"{src.timeout:g}",
                  "received": str(src.received), "dropped": str(src.dropped),
                  "last_drop_reason": src.last_drop_reason}
        statuses.append(DiagnosticStatus(level=level, name=f"{node_name}: source {src.source.value}",
                                         hardware_id=node_name, message=message,
                                         values=[KeyValue(key=k, value=v) for k, v in values.items()]))
    return DiagnosticArray(header=Header(stamp=stamp), status=statuses)


_POLICY_LEVELS = {RunnerState.FAULT: DiagnosticStatus.ERROR, RunnerState.STALE_IMAGES: DiagnosticStatus.WARN,
                  RunnerState.STALE_INSTRUCTION: DiagnosticStatus.WARN,
                  RunnerState.NO_INSTRUCTION: DiagnosticStatus.WARN}


def _optional(value: float | None, digits: int) -> str:
    return "never" if value is None else f"{value:.{digits}f}"


def policy_diagnostics_to_msg(report: PolicyReport, stamp: Time, node_name: str) -> DiagnosticArray:
    """/diagnostics of the policy node: one status, ERROR on a fault, WARN while the watchdog or a missing
    instruction keeps it from acting, OK otherwise; latencies in s, ages in s ("never" when not received)."""
    values = {
        "state": report.state.value,
        "reason": report.reason,
        "episode": str(report.episode),
        "instruction": report.instruction,
        "proposals": str(report.proposals),
        "inferences": str(report.inferences),
        "achieved_rate_hz": f"{report.achieved_rate_hz:.3f}",
        "inference_latency_last_s": _optional(report.latency_last_s, 4),
        "inference_latency_p50_s": _optional(report.latency_p50_s, 4),
        "inference_latency_max_s": _optional(report.latency_max_s, 4),
        "frames_dropped": str(report.frames_dropped),
        "frames_malformed": str(report.frames_malformed),
        "messages_malformed": str(report.messages_malformed),
        "stale_results": str(report.stale_results),
        "primitive_timeouts": str(report.primitive_timeouts),
        "primitives_aborted": str(report.primitives_aborted),
        "faults": str(report.faults),
        "object_in_hand": str(report.object_in_hand).lower(),
        "last_action": "" if report.last_action is None else str(report.last_action),
        **{f"age_s.{name}": _optional(age, 3) for name, age in report.ages.items()},
    }
    status = DiagnosticStatus(level=_POLICY_LEVELS.get(report.state, DiagnosticStatus.OK),
                              name=f"{node_name}: policy", hardware_id=node_name, message=report.reason,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
