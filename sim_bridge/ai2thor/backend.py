"""``Ai2ThorBackend``: the SimBackend on AI2-THOR in Stretch mode, driven the way SafeVLA drives it.

The controller is made by ``controller_factory(**kwargs)`` with SafeVLA's ``STRETCH_ENV_ARGS``
(``Ai2ThorConfig.controller_kwargs``; ``platform`` is passed by name, "CloudRendering" when headless, and the
default factory turns it into the ai2thor class). The default factory imports ai2thor lazily, so this module
loads without it; anything else with ``step``/``reset``/``last_event`` (the contract double in the tests) can
be injected.

Episodes: ``reset`` loads the scene with ``controller.reset(scene=...)``, calibrates the cameras with
SafeVLA's nominal values (no jitter: deployment must be deterministic), teleports to the start pose with
TeleportFull (horizon 0, as SafeVLA requires: the camera tilt comes from RotateCameraMount), removes the
targets for the infeasible variant (RemoveFromScene), applies the OOD perturbations, and caches
GetReachablePositions (SafeVLA queries it once per task).

Time: ``set_base_twist`` latches (v, w); ``advance(dt)`` integrates it first-order into one
MoveAgent(ahead=v*dt) and one RotateAgent(degrees=-deg(w*dt)) (THOR turns clockwise for positive degrees),
with the continuous-motion parameters of AI2-THOR's own Stretch traces. Latched joint targets go out on the
next ``advance`` as one MoveArm (lift and extension together, in SafeVLA's root-relative arm coordinates) and
one RotateWristRelative; AI2-THOR completes each motion within the call. Discrete actions use exactly the
calls of SafeVLA's ``StretchController.agent_step`` (``sim_bridge.ai2thor.actions``).

Costs come from ``StepCostEvaluator``: a snapshot after each committed step, whose collision is the first
"collided" errorMessage since the previous commit. Snapshots are in the THOR world frame with REP-103 axes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from safevla_node.actions import ACTIONS, NUM_ACTIONS
from safevla_node.safety.step_cost import StepCostConfig, StepCostEvaluator
from safevla_node.safety.types import CollisionEvent, StepCost, WorldSnapshot
from sim_bridge.ai2thor import metadata as md
from sim_bridge.ai2thor.actions import discrete_action_calls
from sim_bridge.ai2thor.config import Ai2ThorConfig
from sim_bridge.ai2thor.constants import (
    CAMERA_CROP_FRACTION,
    CONTINUOUS_MOTION_ARGS,
    EXTENSION_RANGE_M,
    LIFT_RANGE_M,
    MANIP_CAMERA_MOUNT_DEG,
    NAV_CAMERA_MOUNT_DEG,
    WRIST_YAW_RANGE_RAD,
)
from sim_bridge.ai2thor.errors import INSTALL_HINT, Ai2ThorError, Ai2ThorUnavailableError
from sim_bridge.ai2thor.scan import depth_to_scan, empty_scan
from sim_bridge.ai2thor.tasks import EpisodeSpec, HouseSource, load_scene, spec_from_scene, spec_from_val_task
from sim_bridge.interface import (
    JOINT_NAMES,
    CameraFrame,
    EpisodeStatus,
    Observation,
    SimBackend,
    StepResult,
    TaskKind,
    TaskSpec,
    check_dt,
    check_twist,
)

__all__ = ["Ai2ThorBackend", "ai2thor_controller"]

_log = logging.getLogger(__name__)

#: Joints AI2-THOR's Stretch can be driven on, with their accepted ranges.
_DRIVEN_JOINTS = {
    "joint_lift": LIFT_RANGE_M,
    "wrist_extension": EXTENSION_RANGE_M,
    "joint_wrist_yaw": WRIST_YAW_RANGE_RAD,
}
_EPS = 1e-9


def ai2thor_controller(**kwargs: Any) -> Any:
    """Start ``ai2thor.controller.Controller`` (imported here, so ai2thor stays optional).

    Raises:
        Ai2ThorUnavailableError: ai2thor is not installed, the build is missing, or Unity would not start.
    """
    try:
        import ai2thor.controller
        import ai2thor.platform
    except ImportError as exc:
        raise Ai2ThorUnavailableError(
            f"the ai2thor package is not importable ({exc}); {INSTALL_HINT}"
        ) from None
    path = kwargs.get("local_executable_path")
    if path and not Path(path).exists():
        raise Ai2ThorUnavailableError(f"local_executable_path {path!r} does not exist; {INSTALL_HINT}")
    if isinstance(kwargs.get("platform"), str):
        kwargs["platform"] = getattr(ai2thor.platform, kwargs["platform"])
    try:
        return ai2thor.controller.Controller(**kwargs)
    except Exception as exc:  # noqa: BLE001 (ai2thor raises plain Exception/ValueError for a missing build)
        raise Ai2ThorUnavailableError(
            f"AI2-THOR did not start ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
        ) from exc


class Ai2ThorBackend(SimBackend):
    """AI2-THOR Stretch behind the SimBackend interface (see the module docstring)."""

    name = "ai2thor"

    def __init__(
        self,
        config: Ai2ThorConfig = Ai2ThorConfig(),
        *,
        scene: str | Path | Mapping[str, Any] | None = None,
        val_tasks: Mapping[TaskKind, Sequence[Mapping[str, Any]]] | None = None,
        houses: HouseSource | None = None,
        cost_config: StepCostConfig = StepCostConfig(),
        controller_factory: Callable[..., Any] = ai2thor_controller,
    ) -> None:
        """Start the controller.

        Args:
            config: controller arguments and read-out settings.
            scene: the scene of every episode when ``val_tasks`` is not given: a ProcTHOR house dict, a house
                JSON path, or an iTHOR scene name.
            val_tasks: SafeVLA benchmark rows by family (``tasks.load_val_tasks``); episode ``seed`` picks row
                ``seed % len``; ``houses`` supplies the house of each row.
            houses: ProcTHOR houses by house_index.
            cost_config: step-cost mode and thresholds.
            controller_factory: builds the controller from keyword arguments.

        Raises:
            Ai2ThorError: neither a scene nor task specs were given.
            Ai2ThorUnavailableError: from the default factory, when ai2thor or its build is missing.
        """
        if scene is None and not val_tasks:
            raise Ai2ThorError(
                "give scene= (house dict, house JSON path or iTHOR scene name) or val_tasks= with houses="
            )
        self.config = config
        self._scene = load_scene(scene) if scene is not None else None
        self._val_tasks = val_tasks
        self._houses = houses
        self._evaluator = StepCostEvaluator(cost_config)
        kwargs = config.controller_kwargs()
        if config.headless:
            kwargs["platform"] = "CloudRendering"
        self.controller = controller_factory(**kwargs)
        self._perturb = {"materials": False, "lighting": False, "colors": False}
        self._event: Any = None
        self._spec: EpisodeSpec | None = None
        self._task: TaskSpec | None = None
        self._twist = (0.0, 0.0)
        self._moving = False
        self._joint_targets: dict[str, float] = {}
        self._reachable = np.zeros((0, 2))
        self._seen_cache: frozenset[str] | None = None
        self._pending_collision: CollisionEvent | None = None
        self._time = 0.0
        self._steps = 0
        self._success = False
        self._done = False
        self._path_length = 0.0

    # --- controller plumbing -------------------------------------------------------------------------------

    def _step(self, call: Mapping[str, Any]) -> Any:
        """Send one action; track the agent's path and the step's first collision."""
        before = self._agent_xy()
        event = self.controller.step(dict(call))
        self._event = event
        self._seen_cache = None
        collision = md.collision_event(event.metadata)
        if collision is not None and self._pending_collision is None:
            self._pending_collision = collision
        after = self._agent_xy()
        if before is not None and after is not None:
            self._path_length += math.dist(before, after)
        return event

    def _query(self, call: Mapping[str, Any]) -> Any:
        """A read-only query (GetVisibleObjects, GetReachablePositions): its actionReturn, None on failure."""
        event = self.controller.step(dict(call))
        return event.metadata.get("actionReturn") if event.metadata.get("lastActionSuccess") else None

    def _agent_xy(self) -> tuple[float, float] | None:
        if self._event is None:
            return None
        x, y, _ = md.thor_position_to_ros(self._event.metadata["agent"]["position"])
        return (x, y)

    def _arm(self) -> md.ArmPose | None:
        arm = self._event.metadata.get("arm") if self._event is not None else None
        return md.arm_pose(arm) if arm else None

    def _require_episode(self) -> None:
        if self._event is None or self._task is None:
            raise Ai2ThorError("no episode: call reset(seed, task) first")

    # --- episodes ------------------------------------------------------------------------------------------

    def set_perturbations(
        self, *, materials: bool = False, lighting: bool = False, colors: bool = False
    ) -> None:
        """OOD perturbations (RandomizeMaterials/RandomizeLighting/RandomizeColors), applied at every reset
        and, when an episode is running, right away."""
        self._perturb = {"materials": materials, "lighting": lighting, "colors": colors}
        if self._event is not None:
            self._apply_perturbations()

    def _apply_perturbations(self) -> None:
        for key, action in (
            ("materials", "RandomizeMaterials"),
            ("lighting", "RandomizeLighting"),
            ("colors", "RandomizeColors"),
        ):
            if self._perturb[key]:
                self._step({"action": action})

    def _calibrate(self) -> None:
        """SafeVLA's ``calibrate_agent`` with its nominal values, then the hidden magnet sphere."""
        fov = self.config.field_of_view
        for call in (
            {
                "action": "RotateCameraMount",
                "degrees": NAV_CAMERA_MOUNT_DEG,
                "secondary": False,
                "raise_for_failure": True,
                "renderImage": False,
            },
            {
                "action": "RotateCameraMount",
                "degrees": MANIP_CAMERA_MOUNT_DEG,
                "secondary": True,
                "raise_for_failure": True,
            },
            {
                "action": "ChangeFOV",
                "fieldOfView": fov,
                "camera": "FirstPersonCharacter",
                "raise_for_failure": True,
                "renderImage": False,
            },
            {
                "action": "ChangeFOV",
                "fieldOfView": fov,
                "camera": "SecondaryCamera",
                "raise_for_failure": True,
                "renderImage": False,
            },
            {"action": "SetGripperOpenness", "openness": 30, "raise_for_failure": True},
            {"action": "ToggleMagnetVisibility", "visible": False, "raise_for_failure": True},
        ):
            self._step(call)

    def _load(self, scene: str | dict[str, Any]) -> None:
        if isinstance(scene, dict):
            scene.setdefault("metadata", {}).setdefault("agent", {})["horizon"] = (
                0  # SafeVLA: HORIZON must be 0
            )
        self._event = self.controller.reset(scene=scene)
        self._calibrate()

    def _episode_spec(self, seed: int, task: TaskKind, infeasible: bool) -> EpisodeSpec:
        if self._val_tasks:
            rows = self._val_tasks.get(task) or []
            if not rows:
                raise Ai2ThorError(
                    f"no task specs for {task.value}; families given: {[k.value for k in self._val_tasks]}"
                )
            spec = spec_from_val_task(rows[seed % len(rows)], self._houses, infeasible=infeasible)
            self._load(spec.scene)  # type: ignore[arg-type]
            return spec
        assert self._scene is not None
        scene = load_scene(self._scene) if isinstance(self._scene, dict) else self._scene
        self._load(scene)
        return spec_from_scene(scene, self._event.metadata["objects"], task, seed, infeasible=infeasible)

    def reset(self, seed: int, task: TaskKind, *, infeasible: bool = False) -> Observation:
        """Load the episode of ``seed`` (see the module docstring) and return its first observation."""
        task = TaskKind(task)
        self._pending_collision = None
        spec = self._episode_spec(seed, task, infeasible)
        if spec.start_position is not None:
            p = spec.start_position
            self._step(
                {
                    "action": "TeleportFull",
                    "x": p["x"],
                    "y": p["y"],
                    "z": p["z"],
                    "rotation": {"x": 0, "y": spec.start_rotation_deg, "z": 0},
                    "horizon": 0,
                    "standing": True,
                }
            )
        for object_id in spec.removed_ids:
            self._step({"action": "RemoveFromScene", "objectId": object_id})
        self._apply_perturbations()
        reachable = self._query({"action": "GetReachablePositions"})
        self._reachable = md.reachable_xy(reachable)
        self._spec = spec
        self._task = TaskSpec(
            kind=task,
            instruction=spec.instruction,
            target_type=spec.target_type,
            target_id=None if infeasible else (spec.target_ids[0] if spec.target_ids else None),
        )
        self._twist, self._moving, self._joint_targets = (0.0, 0.0), False, {}
        self._time, self._steps, self._success, self._done, self._path_length = 0.0, 0, False, False, 0.0
        self._pending_collision = None
        self._evaluator.reset(self._snapshot())
        return self.observe()

    # --- continuous commands -------------------------------------------------------------------------------

    def set_base_twist(self, linear_x: float, angular_z: float) -> None:
        """Latch (m/s, rad/s). Raises ValueError on a non-finite value."""
        check_twist(linear_x, angular_z)
        self._twist = (float(linear_x), float(angular_z))

    def set_joint_targets(self, targets: Mapping[str, float]) -> None:
        """Latch absolute targets for joint_lift, wrist_extension, joint_wrist_yaw (m, m, rad).

        Raises:
            ValueError: an unknown or undrivable joint, a non-finite or out-of-range value.
        """
        checked: dict[str, float] = {}
        for joint, value in targets.items():
            if joint not in JOINT_NAMES:
                raise ValueError(f"unknown joint {joint!r}; valid joints: {list(JOINT_NAMES)}")
            if joint not in _DRIVEN_JOINTS:
                raise ValueError(
                    f"joint {joint!r} cannot be driven in AI2-THOR's Stretch "
                    f"(drivable: {list(_DRIVEN_JOINTS)}); "
                    "use pickup()/release() for the gripper"
                )
            low, high = _DRIVEN_JOINTS[joint]
            if not math.isfinite(value) or not (low <= value <= high):
                raise ValueError(f"joint target {joint}={value!r} is outside [{low:.4g}, {high:.4g}]")
            checked[joint] = float(value)
        self._joint_targets.update(checked)

    def advance(self, dt: float) -> None:
        """Run the latched twist for ``dt`` s and send pending joint targets (see the module docstring).

        Raises:
            ValueError: ``dt`` is negative or not finite.
        """
        check_dt(dt)
        self._require_episode()
        v, w = self._twist
        ahead, turn_deg = v * dt, -math.degrees(w * dt)
        if abs(ahead) > _EPS:
            self._step({"action": "MoveAgent", "ahead": ahead, **CONTINUOUS_MOTION_ARGS})
        if abs(turn_deg) > _EPS:
            self._step({"action": "RotateAgent", "degrees": turn_deg, **CONTINUOUS_MOTION_ARGS})
        self._moving = abs(ahead) > _EPS or abs(turn_deg) > _EPS
        if self._joint_targets:
            self._send_joint_targets()
        self._time += dt

    def _send_joint_targets(self) -> None:
        arm = self._arm()
        if arm is None:
            raise Ai2ThorError(
                "joint targets need metadata['arm']; start the controller with agentMode='stretch'"
            )
        targets, self._joint_targets = self._joint_targets, {}
        if "joint_lift" in targets or "wrist_extension" in targets:
            position = arm.move_arm_position(
                lift=targets.get("joint_lift"), extension=targets.get("wrist_extension")
            )
            self._step({"action": "MoveArm", "position": position, **CONTINUOUS_MOTION_ARGS})
        if "joint_wrist_yaw" in targets:
            yaw = (
                -math.degrees(targets["joint_wrist_yaw"]) - arm.wrist_thor_deg
            )  # THOR target minus THOR current
            if abs(yaw) > _EPS:
                self._step({"action": "RotateWristRelative", "yaw": yaw, **CONTINUOUS_MOTION_ARGS})

    def pickup(self) -> bool:
        """PickupObject (Stretch: whatever is in the magnet sphere); True if something is held now."""
        self._require_episode()
        self._step({"action": "PickupObject"})
        return bool(md.held_object_ids(self._event.metadata))

    def release(self) -> bool:
        """ReleaseObject, then 2 s of physics as SafeVLA's dropoff does; True if something was held."""
        self._require_episode()
        held = bool(md.held_object_ids(self._event.metadata))
        self._step({"action": "ReleaseObject"})
        self._step({"action": "AdvancePhysicsStep", "simSeconds": 2})
        return held

    # --- read-out ------------------------------------------------------------------------------------------

    def _seen_ids(self) -> frozenset[str]:
        if self._seen_cache is None:
            visible = self._query(
                {"action": "GetVisibleObjects", "maxDistance": self.config.seen_max_distance}
            )
            self._seen_cache = md.seen_object_ids(self._event.metadata, visible or ())
        return self._seen_cache

    def _snapshot(self) -> WorldSnapshot:
        snap = md.snapshot(self._event.metadata, self._time, self._seen_ids(), self._reachable)
        if snap.collision is None and self._pending_collision is not None:
            snap = dataclasses.replace(snap, collision=self._pending_collision)
        return snap

    @staticmethod
    def _crop(image: np.ndarray) -> np.ndarray:
        """SafeVLA's crop: round(width * 6/396) columns off each side."""
        cut = round(image.shape[1] * CAMERA_CROP_FRACTION)
        return np.ascontiguousarray(image[:, cut:-cut] if cut else image)

    def _camera(self, rgb: np.ndarray | None, depth: np.ndarray | None) -> CameraFrame | None:
        """A cropped frame with pinhole intrinsics from the vertical field of view (square pixels)."""
        if rgb is None:
            return None
        rgb = self._crop(rgb)[..., :3]
        depth = None if depth is None else self._crop(depth).astype(np.float32)
        h, w = rgb.shape[:2]
        f = (h / 2.0) / math.tan(math.radians(self.config.field_of_view) / 2.0)
        return CameraFrame(rgb=rgb, depth=depth, fx=f, fy=f, cx=w / 2.0, cy=h / 2.0)

    def observe(self, render: bool = True) -> Observation:
        """Cameras (cropped like SafeVLA's), arm joints, the depth-derived scan, the privileged snapshot."""
        self._require_episode()
        event = self._event
        nav = manip = None
        if render:
            third = list(getattr(event, "third_party_camera_frames", None) or [])
            third_depth = list(getattr(event, "third_party_depth_frames", None) or [])
            nav = self._camera(event.frame, event.depth_frame)
            manip = self._camera(third[0] if third else None, third_depth[0] if third_depth else None)
        depth = None if event.depth_frame is None else self._crop(event.depth_frame)
        cfg = self.config
        scan = (
            depth_to_scan(
                depth, cfg.field_of_view, cfg.nav_camera_pitch_deg, cfg.scan_rows, 0.01, cfg.range_max
            )
            if depth is not None
            else empty_scan(0.01, cfg.range_max)
        )
        arm = self._arm()
        joints = (
            {}
            if arm is None
            else {"joint_lift": arm.lift, "wrist_extension": arm.extension, "joint_wrist_yaw": arm.wrist_yaw}
        )
        return Observation(
            time=self._time,
            nav_camera=nav,
            manip_camera=manip,
            base_velocity=self._twist if self._moving else (0.0, 0.0),
            joints=joints,
            scan=scan,
            snapshot=self._snapshot(),
        )

    # --- steps ---------------------------------------------------------------------------------------------

    def commit_step(self) -> StepCost:
        """Close one cost step: the Safety-CHORES cost of everything since the previous commit."""
        self._require_episode()
        cost = self._evaluator.step(self._snapshot())
        self._pending_collision = None
        self._steps += 1
        if self._steps >= self._task.max_steps:  # type: ignore[union-attr]
            self._done = True
        return cost

    def execute_action(self, action_index: int, render: bool = True) -> StepResult:
        """Run SafeVLA action ``action_index`` with the calls its StretchController makes, commit and report.

        Raises:
            ValueError: an index outside 0..19.
            Ai2ThorError: no episode, or the episode is already done.
        """
        if not 0 <= action_index < NUM_ACTIONS:
            raise ValueError(f"action_index={action_index!r} is outside 0..{NUM_ACTIONS - 1}")
        self._require_episode()
        if self._done:
            raise Ai2ThorError("the episode is done; call reset() before further actions")
        action = ACTIONS[action_index]
        self._twist, self._moving = (0.0, 0.0), False
        calls = discrete_action_calls(
            action,
            self._arm(),
            quick_navigation=self.config.quick_navigation,
            render_image_synthesis=self.config.render_depth,
        )
        for call in calls:
            self._step(call)
        self._time += self.config.discrete_action_period_s
        if calls:
            cost = self.commit_step()
        else:
            cost = self._evaluator.step_done()
            self._steps += 1
            if action.code == "end":
                self._success = self._successful()
                self._done = True
        return StepResult(observation=self.observe(render), cost=cost, status=self.status())

    def _successful(self) -> bool:
        """ObjectNav: a target visible within success_distance; PickUp/Fetch: a target held."""
        assert self._spec is not None and self._task is not None
        if self._task.target_id is None:
            return False
        targets = set(self._spec.target_ids)
        if self._task.kind is TaskKind.OBJECT_NAV:
            visible = (
                self._query({"action": "GetVisibleObjects", "maxDistance": self.config.success_distance})
                or ()
            )
            return bool(targets & set(visible))
        return bool(targets & set(md.held_object_ids(self._event.metadata)))

    def status(self) -> EpisodeStatus:
        """Progress; ``expert_path_length`` is the benchmark's expert length in steps (as SEL uses)."""
        self._require_episode()
        assert self._task is not None and self._spec is not None
        expert = self._spec.expert_length
        return EpisodeStatus(
            task=self._task,
            steps=self._steps,
            success=self._success,
            done=self._done,
            cumulative_cost=self._evaluator.cumulative,
            path_length=self._path_length,
            expert_path_length=None if expert is None else float(expert),
        )

    def close(self) -> None:
        """Stop Unity."""
        stop = getattr(self.controller, "stop", None)
        if stop is not None:
            stop()
