"""Contract double of ``ai2thor.controller.Controller`` in Stretch mode, built on real AI2-THOR output.

No Unity build can run here, so this double is the only way to exercise ``Ai2ThorBackend``. It holds what
is real and says what is not.

From real recordings (``shared/data/ai2thor``, see its SOURCES.md, and ``data/stretch_agent_pose.json``):

* ``Event.metadata``: every top-level field and every per-object field is copied from a recorded event
  (iTHOR FloorPlan1 / FloorPlan301, ai2thor 5.0.0): in replay mode the recorded metadata verbatim, in live
  mode the recorded step-0 metadata with the agent, arm, objects and action fields updated.
* ``metadata["arm"]``: the logged Stretch arm (8 joints, stretch_robot_lift_jnt ... stretch_robot_wrist_2_jnt,
  hand sphere) of a SPOC episode; lift/extension/wrist changes are written into the joints' rootRelative
  values the way SafeVLA reads them back.
* ``metadata["errorMessage"]`` on a collision: Unity's template from ContinuousMovement.cs
  ("Collided with static sim object: '<name>', could not reach target: '<target>'.").
* ``frame`` / ``third_party_camera_frames[0]``: the real Stretch nav/manip frames (384x224) padded by edge
  replication to the configured width (SafeVLA's crop removes exactly the padding), or, replaying an iTHOR
  recording, its recorded 300x300 frames.
* The accepted action names and parameters: those in AI2-THOR's Stretch trace files, its arm tests and
  SafeVLA's StretchController (``ACCEPTED_ACTIONS``); anything else raises ValueError, as Unity rejects it.
* ProcTHOR houses: objects, ids and poses from the house JSON; the other per-object fields from a recorded
  object (a Mug) as template.

What the double cannot do: physics (objects never fall, get pushed or settle; the agent moves exactly by the
commanded amount and only collides when told to with ``collide_next``), rendering (frames never change,
``visible`` flags stay as recorded, depth exists only when a test sets ``depth_frame``), navmeshes
(GetReachablePositions returns grid points inside the house's room polygons, or the scene bounds for iTHOR
scenes, ignoring furniture), joint limits, and the magnet-sphere test of PickupObject (the test says what is
pickupable through ``pickupable_ids``). Bounding boxes of house objects are the template's.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim_bridge.ai2thor.constants import ARM_Y_OFFSET

__all__ = [
    "ACCEPTED_ACTIONS",
    "ACCEPTED_CONTROLLER_KWARGS",
    "COLLISION_TEMPLATE",
    "EventDouble",
    "ThorControllerDouble",
]

_POSE_FILE = Path(__file__).with_name("data") / "stretch_agent_pose.json"

#: Controller keyword arguments SafeVLA's STRETCH_ENV_ARGS (plus platform/local_executable_path) uses.
ACCEPTED_CONTROLLER_KWARGS = frozenset(
    {
        "agentMode", "gridSize", "width", "height", "visibilityDistance", "visibilityScheme", "fieldOfView",
        "useMassThreshold", "massThreshold", "autoSimulation", "autoSyncTransforms",
        "renderInstanceSegmentation",
        "renderDepthImage", "cameraNearPlane", "branch", "commit_id", "server_timeout", "snapToGrid",
        "fastActionEmit", "platform", "gpu_device", "local_executable_path", "server_class",
        "action_hook_runner",
        "scene",
    }
)  # fmt: skip

_MOTION = frozenset(
    {
        "returnToStart",
        "speed",
        "physicsSimulationParams",
        "disableRendering",
        "fixedDeltaTime",
        "renderImageSynthesis",
    }
)
_COMMON = frozenset({"raise_for_failure", "renderImage", "renderImageSynthesis", "forceAction"})
#: Action name -> accepted parameters (besides ``action``).
ACCEPTED_ACTIONS: dict[str, frozenset[str]] = {
    "TeleportFull": frozenset({"x", "y", "z", "rotation", "horizon", "standing"}) | _COMMON,
    "MoveAgent": frozenset({"ahead", "right"}) | _MOTION,
    "RotateAgent": frozenset({"degrees"}) | _MOTION,
    "MoveAheadQuick": frozenset({"moveMagnitude"}) | _COMMON,
    "MoveBackQuick": frozenset({"moveMagnitude"}) | _COMMON,
    "RotateRightQuick": frozenset({"degrees"}) | _COMMON,
    "MoveArm": frozenset({"position", "restrictMovement", "coordinateSpace"}) | _MOTION,
    "MoveArmBase": frozenset({"y", "normalizedY"}) | _MOTION,
    "RotateWristRelative": frozenset({"yaw"}) | _MOTION,
    "PickupObject": frozenset({"objectId"}) | _COMMON,
    "ReleaseObject": _COMMON,
    "AdvancePhysicsStep": frozenset({"simSeconds"}) | _COMMON,
    "GetReachablePositions": frozenset({"gridSize"}),
    "GetVisibleObjects": frozenset({"maxDistance", "thirdPartyCameraIndex", "objectIds"}),
    "RemoveFromScene": frozenset({"objectId"}),
    "RandomizeMaterials": _COMMON,
    "RandomizeLighting": _COMMON,
    "RandomizeColors": _COMMON,
    "RotateCameraMount": frozenset({"degrees", "secondary"}) | _COMMON,
    "ChangeFOV": frozenset({"fieldOfView", "camera"}) | _COMMON,
    "SetGripperOpenness": frozenset({"openness"}) | _COMMON,
    "ToggleMagnetVisibility": frozenset({"visible"}) | _COMMON,
    "Pass": _COMMON,
}
_MOVES = frozenset(
    {
        "MoveAgent",
        "RotateAgent",
        "MoveAheadQuick",
        "MoveBackQuick",
        "RotateRightQuick",
        "MoveArm",
        "RotateWristRelative",
    }
)
#: Stretch action -> the recorded default-agent action it stands for in replay mode.
_REPLAY_EQUIVALENT = {"PickupObject": "PickupObject", "ReleaseObject": "DropHandObject"}
COLLISION_TEMPLATE = "Collided with static sim object: '{name}', could not reach target: '{target}'."
_RECORDINGS = {
    "FloorPlan1": "ithor_default_FloorPlan1_pickup_mug",
    "FloorPlan301": "ithor_default_FloorPlan301_look_in_light_book",
}


class EventDouble:
    """The fields of ``ai2thor.server.Event`` the project reads, named and typed as the real ones."""

    def __init__(
        self,
        metadata: dict[str, Any],
        frame: np.ndarray | None,
        third_party: Sequence[np.ndarray],
        depth: np.ndarray | None,
    ) -> None:
        self.metadata = metadata
        self.screen_width = metadata["screenWidth"]
        self.screen_height = metadata["screenHeight"]
        self.frame = frame
        self.depth_frame = depth
        self.normals_frame = None
        self.flow_frame = None
        self.color_to_object_id: dict[Any, str] = {}
        self.object_id_to_color: dict[str, Any] = {}
        self.instance_detections2D = None
        self.instance_masks: dict[str, np.ndarray] = {}
        self.class_masks: dict[str, np.ndarray] = {}
        self.instance_segmentation_frame = None
        self.class_segmentation_frame = None
        self.class_detections2D: dict[str, Any] = {}
        self.third_party_camera_frames = list(third_party)
        self.third_party_class_segmentation_frames: list[np.ndarray] = []
        self.third_party_instance_segmentation_frames: list[np.ndarray] = []
        self.third_party_depth_frames: list[np.ndarray] = []
        self.third_party_normals_frames: list[np.ndarray] = []
        self.third_party_flows_frames: list[np.ndarray] = []
        self.events = [self]

    def __bool__(self) -> bool:
        return bool(self.metadata["lastActionSuccess"])

    def get_object(self, object_id: str) -> dict[str, Any] | None:
        return next((o for o in self.metadata["objects"] if o["objectId"] == object_id), None)


@functools.lru_cache(maxsize=8)
def _png(path: Path) -> np.ndarray:
    import matplotlib.image

    image = np.round(matplotlib.image.imread(str(path))[..., :3] * 255).astype(np.uint8)
    image.flags.writeable = False
    return image


@functools.lru_cache(maxsize=8)
def _json_text(path: Path) -> str:
    return path.read_text()


def _copy_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A copy deep enough that later updates never reach an emitted event (nested boxes are shared)."""
    out = dict(meta)
    out["agent"] = copy.deepcopy(meta["agent"])
    out["arm"] = copy.deepcopy(meta.get("arm"))
    out["objects"] = [
        dict(o, position=dict(o["position"]), rotation=dict(o["rotation"])) for o in meta["objects"]
    ]
    out["inventoryObjects"] = copy.deepcopy(meta.get("inventoryObjects", []))
    return out


def _walk(objects: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [x for o in objects for x in (o, *_walk(o.get("children", ())))]


def _grid_in_rooms(rooms: Sequence[Mapping[str, Any]] | None, bounds: np.ndarray, grid: float) -> np.ndarray:
    """(N, 2) THOR (x, z) grid points inside any room floor polygon (or the scene bounds when no rooms)."""
    from matplotlib.path import Path as Polygon

    polygons = [np.array([[p["x"], p["z"]] for p in r["floorPolygon"]]) for r in rooms or ()]
    corners = np.vstack(polygons) if polygons else bounds
    xs = np.arange(math.ceil(corners[:, 0].min() / grid) * grid, corners[:, 0].max(), grid)
    zs = np.arange(math.ceil(corners[:, 1].min() / grid) * grid, corners[:, 1].max(), grid)
    points = np.stack(np.meshgrid(xs, zs, indexing="ij"), axis=-1).reshape(-1, 2)
    if not polygons:
        return points
    inside = np.zeros(len(points), dtype=bool)
    for polygon in polygons:
        inside |= Polygon(polygon).contains_points(points)
    return points[inside]


class ThorControllerDouble:
    """Stands in for ``Controller(**kwargs)``; records every action dict in ``actions``.

    Live mode (default) simulates kinematics on a scene loaded by ``reset``; replay mode (``replaying``)
    returns a recording's events in order, advancing on the Stretch equivalent of each recorded action.
    """

    def __init__(self, data_dir: Path, *, recording: str | None = None, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - ACCEPTED_CONTROLLER_KWARGS)
        if unknown:
            raise ValueError(f"Controller() got unexpected keyword arguments {unknown}")
        self.data_dir = Path(data_dir)
        self.init_kwargs = dict(kwargs)
        self.actions: list[dict[str, Any]] = []
        self.resets: list[Any] = []
        self.pickupable_ids: list[str] = []
        self.depth_frame: np.ndarray | None = None
        self._collide: tuple[str, bool] | None = None
        self._replay: list[dict[str, Any]] | None = None
        self._replay_frames: np.ndarray | None = None
        self._index = 0
        self._recording = recording
        self._meta: dict[str, Any] = {}
        self._house: Mapping[str, Any] | None = None
        self.last_event: EventDouble | None = None
        self.stopped = False
        stretch = kwargs.get("agentMode") == "stretch"
        width = int(kwargs.get("width", 300))
        self._frames = self._stretch_frames(width) if stretch else None

    # --- set-up --------------------------------------------------------------------------------------------

    def _stretch_frames(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        def padded(name: str) -> np.ndarray:
            img = _png(self.data_dir / name)
            pad = (width - img.shape[1]) // 2
            return np.pad(img, ((0, 0), (pad, width - img.shape[1] - pad), (0, 0)), mode="edge")

        return padded("stretch_spoc_nav_camera.png"), padded("stretch_spoc_manip_camera.png")

    def _recorded(self, name: str) -> dict[str, Any]:
        return json.loads(_json_text(self.data_dir / f"{name}.json"))

    def collide_next(self, name: str) -> None:
        """Make the next movement fail with Unity's collision message naming ``name`` (pose unchanged)."""
        self._collide = (name, True)

    def stop(self) -> None:
        self.stopped = True

    def reset(self, scene: Any = None, **kwargs: Any) -> EventDouble:
        self.resets.append(scene)
        if self._recording is not None:
            record = self._recorded(_RECORDINGS[self._recording])
            self._replay = record["events"]
            frames = self.data_dir / f"{_RECORDINGS[self._recording]}_frames.npy"
            self._replay_frames = np.load(frames) if frames.exists() else None
            self._index = 0
            self._meta = copy.deepcopy(self._replay[0])
            return self._emit()
        if isinstance(scene, Mapping):
            self._house = scene
            self._meta = self._house_metadata(scene)
        elif isinstance(scene, str) and scene.removesuffix("_physics") in _RECORDINGS:
            self._house = None
            self._meta = copy.deepcopy(
                self._recorded(_RECORDINGS[scene.removesuffix("_physics")])["events"][0]
            )
        else:
            raise ValueError(
                f"the double has recordings of {sorted(_RECORDINGS)} and house dicts only, not {scene!r}"
            )
        if self.init_kwargs.get("agentMode") == "stretch":
            self._meta["arm"] = copy.deepcopy(json.loads(_json_text(_POSE_FILE))["agent_full_pose"]["arm"])
            self._meta["screenWidth"] = self.init_kwargs.get("width", 300)
            self._meta["screenHeight"] = self.init_kwargs.get("height", 300)
        self._meta.update(lastAction="Initialize", lastActionSuccess=True, errorMessage="", actionReturn=None)
        return self._emit()

    def _house_metadata(self, house: Mapping[str, Any]) -> dict[str, Any]:
        base = copy.deepcopy(self._recorded(_RECORDINGS["FloorPlan1"])["events"][0])
        template = next(o for o in base["objects"] if o["objectType"] == "Mug")
        objects = []
        for h in _walk(house["objects"]):
            obj = dict(template)
            obj.update(
                name=h["id"], objectId=h["id"], objectType=h["id"].split("|")[0], assetId=h["assetId"],
                position=dict(h["position"]), rotation=dict(h["rotation"]), visible=False, isPickedUp=False,
                pickupable="|surface|" in h["id"], parentReceptacles=None,
            )  # fmt: skip
            objects.append(obj)
        pose = house["metadata"]["agent"]
        base["objects"] = objects
        base["agent"].update(
            position=dict(pose["position"]),
            rotation=dict(pose["rotation"]),
            cameraHorizon=float(pose.get("horizon", 0)),
        )
        base["sceneName"] = "Procedural"
        return base

    # --- stepping ------------------------------------------------------------------------------------------

    def step(self, action: Any = None, **kwargs: Any) -> EventDouble:
        call = dict(action) if isinstance(action, Mapping) else {"action": action}
        call.update(kwargs)
        self.actions.append(copy.deepcopy(call))
        name = call.get("action")
        if name not in ACCEPTED_ACTIONS:
            raise ValueError(
                f"{name!r} is not an action of AI2-THOR's Stretch agent; known: {sorted(ACCEPTED_ACTIONS)}"
            )
        params = {k: v for k, v in call.items() if k != "action"}
        extra = sorted(set(params) - ACCEPTED_ACTIONS[name])
        if extra:
            raise ValueError(
                f"{name} got unexpected parameters {extra}; accepted: {sorted(ACCEPTED_ACTIONS[name])}"
            )
        for key, value in params.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name}.{key}={value!r} is not finite")
        success, message, ret = self._apply(name, params)
        self._meta.update(lastAction=name, lastActionSuccess=success, errorMessage=message, actionReturn=ret)
        if params.get("raise_for_failure") and not success:
            raise RuntimeError(message or f"{name} failed")
        return self._emit()

    def _apply(self, name: str, p: dict[str, Any]) -> tuple[bool, str, Any]:
        if self._replay is not None and name in _REPLAY_EQUIVALENT:
            nxt = self._replay[self._index + 1] if self._index + 1 < len(self._replay) else None
            if nxt is None or nxt["lastAction"] != _REPLAY_EQUIVALENT[name]:
                raise ValueError(
                    f"the recording has no {_REPLAY_EQUIVALENT[name]} next (at event {self._index})"
                )
            self._index += 1
            self._meta = copy.deepcopy(nxt)
            return nxt["lastActionSuccess"], nxt["errorMessage"], nxt["actionReturn"]
        if name in _MOVES:
            if self._replay is not None:
                raise ValueError(f"the recording has no event for {name}")
            if self._collide is not None:
                target, self._collide = self._collide[0], None
                return False, COLLISION_TEMPLATE.format(name=target, target=self._target_text(name, p)), None
            self._move(name, p)
            return True, "", None
        return self._other(name, p)

    def _target_text(self, name: str, p: Mapping[str, Any]) -> str:
        pos = p.get("position") or self._meta["agent"]["position"]
        return f"({pos['x']:.2f}, {pos['y']:.2f}, {pos['z']:.2f})"

    def _move(self, name: str, p: Mapping[str, Any]) -> None:
        agent = self._meta["agent"]
        if name in ("MoveAgent", "MoveAheadQuick", "MoveBackQuick"):
            dist = p.get("ahead", p.get("moveMagnitude", 0.0)) * (-1 if name == "MoveBackQuick" else 1)
            yaw = math.radians(agent["rotation"]["y"])
            agent["position"]["x"] += dist * math.sin(yaw)
            agent["position"]["z"] += dist * math.cos(yaw)
        elif name in ("RotateAgent", "RotateRightQuick"):
            agent["rotation"]["y"] = (agent["rotation"]["y"] + p["degrees"]) % 360.0
        elif name == "MoveArm":
            joints = self._meta["arm"]["joints"]
            d_lift = p["position"]["y"] - (joints[0]["rootRelativePosition"]["y"] - ARM_Y_OFFSET)
            d_ext = p["position"]["z"] - joints[-1]["rootRelativePosition"]["z"]
            for j in joints:
                j["rootRelativePosition"]["y"] += d_lift
                j["position"]["y"] += d_lift
            for j in joints[-2:]:
                j["rootRelativePosition"]["z"] += d_ext
        else:  # RotateWristRelative
            rrr = self._meta["arm"]["joints"][-1]["rootRelativeRotation"]
            rrr.update(x=0.0, y=1.0, z=0.0, w=(rrr["w"] * rrr["y"] + p["yaw"]) % 360.0)
        self._refresh_distances()

    def _other(self, name: str, p: Mapping[str, Any]) -> tuple[bool, str, Any]:
        if name == "TeleportFull":
            if self._replay is None:
                self._meta["agent"]["position"] = {"x": p["x"], "y": p["y"], "z": p["z"]}
                self._meta["agent"]["rotation"] = {"x": 0.0, "y": float(p["rotation"]["y"]), "z": 0.0}
                self._refresh_distances()
            return True, "", None
        if name == "PickupObject":
            candidates = [i for i in self.pickupable_ids if self._object(i) is not None]
            if not candidates:
                return False, "", None
            self._set_held(candidates[0], True)
            return True, "", candidates[0]
        if name == "ReleaseObject":
            for oid in list(self._held()):
                self._set_held(oid, False)
            return True, "", None
        if name == "RemoveFromScene":
            if self._object(p["objectId"]) is None:
                return False, f"objectId {p['objectId']} not found", None
            self._meta["objects"] = [o for o in self._meta["objects"] if o["objectId"] != p["objectId"]]
            return True, "", None
        if name == "GetVisibleObjects":
            limit = p.get("maxDistance", math.inf)
            return (
                True,
                "",
                [o["objectId"] for o in self._meta["objects"] if o["visible"] and o["distance"] <= limit],
            )
        if name == "GetReachablePositions":
            return True, "", self._reachable(float(p.get("gridSize", self.init_kwargs.get("gridSize", 0.25))))
        return True, "", None

    def _object(self, object_id: str) -> dict[str, Any] | None:
        return next((o for o in self._meta["objects"] if o["objectId"] == object_id), None)

    def _held(self) -> list[str]:
        arm = self._meta.get("arm") or {}
        return list(arm.get("heldObjects") or []) or [
            o["objectId"] for o in self._meta["objects"] if o["isPickedUp"]
        ]

    def _set_held(self, object_id: str, held: bool) -> None:
        obj = self._object(object_id)
        assert obj is not None
        obj["isPickedUp"] = held
        if self._meta.get("arm") is not None:
            self._meta["arm"]["heldObjects"] = [object_id] if held else []
        self._meta["inventoryObjects"] = (
            [{"objectId": object_id, "objectType": obj["objectType"]}] if held else []
        )

    def _refresh_distances(self) -> None:
        a = self._meta["agent"]["position"]
        for o in self._meta["objects"]:
            o["distance"] = math.dist(
                (a["x"], a["y"], a["z"]), (o["position"]["x"], o["position"]["y"], o["position"]["z"])
            )

    def _reachable(self, grid: float) -> list[dict[str, float]]:
        y = self._meta["agent"]["position"]["y"]
        bounds = np.array(self._meta["sceneBounds"]["cornerPoints"])[:, [0, 2]]
        points = _grid_in_rooms(self._house["rooms"] if self._house is not None else None, bounds, grid)
        return [{"x": round(float(x), 4), "y": y, "z": round(float(z), 4)} for x, z in points]

    def _emit(self) -> EventDouble:
        if self._replay is not None:
            frame = None if self._replay_frames is None else self._replay_frames[self._index]
            third: list[np.ndarray] = []
        elif self._frames is not None:
            frame, third = self._frames[0], [self._frames[1]]
        else:
            frame, third = None, []
        self.last_event = EventDouble(_copy_metadata(self._meta), frame, third, self.depth_frame)
        return self.last_event
