"""The depth-derived scan on a known geometry, and the arm metadata against AI2-THOR's own JSON schema."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from sim_bridge.ai2thor.scan import depth_to_scan
from sim_bridge.interface import TaskKind


def _wall_depth(h: int, w: int, vfov: float, pitch_deg: float, distance: float) -> np.ndarray:
    """Planar depth of a wall ``distance`` m ahead, seen by a camera tilted down by ``pitch_deg``."""
    fy = (h / 2) / math.tan(math.radians(vfov) / 2)
    v = np.arange(h)[:, None] + 0.5
    up = (h / 2 - v) / fy  # ray's up component per unit optical depth
    p = math.radians(pitch_deg)
    forward_per_depth = math.cos(p) + up * math.sin(p)
    with np.errstate(divide="ignore"):
        depth = np.where(forward_per_depth > 0, distance / forward_per_depth, np.inf)
    return np.repeat(depth, w, axis=1)


@pytest.mark.parametrize("pitch", [0.0, 27.0])
def test_a_wall_ahead_gives_ranges_of_distance_over_cos_bearing(pitch):
    depth = _wall_depth(224, 384, 59.0, pitch, 2.0)
    scan = depth_to_scan(depth, 59.0, pitch, 5, 0.01, 10.0)
    angles = scan.angle_min + scan.angle_increment * np.arange(scan.ranges.size)
    assert scan.angle_min < 0 < scan.angle_increment and scan.ranges.size == 384
    assert abs(scan.angle_min) == pytest.approx(
        math.atan(192 * math.cos(math.radians(pitch)) / (112 / math.tan(math.radians(29.5)))), rel=1e-2
    )
    np.testing.assert_allclose(scan.ranges, 2.0 / np.cos(angles), rtol=2e-2)


def test_returns_beyond_range_max_are_inf_and_a_bad_pitch_is_rejected():
    scan = depth_to_scan(_wall_depth(224, 384, 59.0, 0.0, 20.0), 59.0, 0.0, 3, 0.01, 10.0)
    assert np.all(np.isinf(scan.ranges))
    with pytest.raises(ValueError, match="outside the 224-row image"):
        depth_to_scan(np.ones((224, 384)), 59.0, 40.0, 3, 0.01, 10.0)
    with pytest.raises(ValueError, match=r"non-empty \(H, W\) array"):
        depth_to_scan(np.ones(5), 59.0, 0.0, 3, 0.01, 10.0)


def _check(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """The draft-07 subset the arm schema uses (type, required, properties, items); errors as strings."""
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = tuple(kinds[t] for t in ([types] if isinstance(types, str) else types))
        if not isinstance(instance, allowed) or (isinstance(instance, bool) and bool not in allowed):
            return [f"{where}: {type(instance).__name__} is not {types}"]
    if isinstance(instance, dict):
        errors += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in instance]
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                errors += _check(instance[key], sub, f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            errors += _check(item, schema["items"], f"{where}[{i}]")
    return errors


def _moved_arm(make_backend, house) -> dict[str, Any]:
    backend, double = make_backend(scene=house)
    backend.reset(0, TaskKind.PICKUP)
    double.pickupable_ids = ["Plate|surface|5|45"]
    backend.set_joint_targets({"joint_lift": 0.7, "wrist_extension": 0.2, "joint_wrist_yaw": 0.5})
    backend.advance(0.1)
    backend.pickup()
    return double.last_event.metadata["arm"]


def test_arm_metadata_after_arm_moves_satisfies_ai2thors_arm_schema(make_backend, house, thor_data):
    schema = json.loads((thor_data / "arm_metadata_schema.json").read_text())["properties"]["arm"]
    arm = _moved_arm(make_backend, house)
    assert arm["heldObjects"] == ["Plate|surface|5|45"]  # as ai2thor's test_arm_pickup_object expects
    assert _check(arm, schema) == []
    broken = dict(arm, joints=[{k: v for k, v in arm["joints"][0].items() if k != "rootRelativePosition"}])
    assert _check(broken, schema) == ["$.joints[0]: missing 'rootRelativePosition'"]


def test_arm_metadata_validates_with_jsonschema_itself(make_backend, house, thor_data):
    import jsonschema

    schema = json.loads((thor_data / "arm_metadata_schema.json").read_text())["properties"]["arm"]
    jsonschema.validate(_moved_arm(make_backend, house), schema)
