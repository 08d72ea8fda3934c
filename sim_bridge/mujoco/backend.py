"""The embedded MuJoCo simulator behind ``SimBackend``: procedural homes, our Stretch-class robot, RGB-D
cameras, lidar, privileged snapshots and the Safety-CHORES step cost.

Time model: ``advance`` steps the physics under the latched twist and joint targets; ``execute_action`` runs a
discrete SafeVLA action as a closed-loop motion (drive until odometry says 0.2 m / the angle is reached, or
a timeout when blocked), then commits one cost step. Grasping attaches the object kinematically to the
gripper (AI2-THOR's PickupObject) and disables its contacts with the robot.

Ground truth (snapshots, visibility, reachable points) is read by ``world.WorldReader``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import replace

import mujoco
import numpy as np

from safevla_node.actions import ACTIONS, ActionKind
from safevla_node.errors import SimError
from safevla_node.safety.step_cost import StepCostConfig, StepCostEvaluator
from safevla_node.safety.types import CollisionEvent, StepCost
from sim_bridge.homegen import HomeGenConfig, Scene, generate_home
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
from sim_bridge.mujoco import stretch_constants as C
from sim_bridge.mujoco.model import SimModel
from sim_bridge.mujoco.perturb import Appearance, Perturbations, add_camera_noise
from sim_bridge.mujoco.sensors import CameraRig, Lidar
from sim_bridge.mujoco.world import WorldReader, wrap_angle
from sim_bridge.tasks import is_success, sample_task

__all__ = ["MujocoBackend"]

_log = logging.getLogger(__name__)

SETTLE_S = 0.4
_MOVE_TIMEOUT_S = 2.0
_ARM_TIMEOUT_S = 1.5
_GRIPPER_SETTLE_S = 0.2
_HELD_CONTYPE, _HELD_CONAFFINITY = C.HELD_BIT, C.WORLD_BIT | C.ITEM_BIT
_ITEM_CONTYPE, _ITEM_CONAFFINITY = C.ITEM_BIT, C.WORLD_BIT | C.ROBOT_BIT | C.ITEM_BIT


class MujocoBackend(SimBackend):
    """Embedded MuJoCo backend (see the module docstring).

    Args:
        home_config: generator knobs for ``reset`` (default ``HomeGenConfig()``).
        scene_source: seed -> scene, replacing the generator (e.g. a fixed purpose-made scene).
        camera_size: (width, height) of both cameras.
        depth: also render depth images.
        lidar_beams: beams of the 360-degree scan.
        perturbations: OOD switches applied at every reset.
        cost_config: step-cost definition (corrected Safety-CHORES by default).
    """

    name = "mujoco"

    def __init__(
        self,
        *,
        home_config: HomeGenConfig | None = None,
        scene_source: Callable[[int], Scene] | None = None,
        camera_size: tuple[int, int] = C.DEFAULT_CAMERA_SIZE,
        depth: bool = True,
        lidar_beams: int = 360,
        perturbations: Perturbations = Perturbations(),
        cost_config: StepCostConfig = StepCostConfig(),
    ) -> None:
        if camera_size[0] < 16 or camera_size[1] < 16 or camera_size[0] > 800 or camera_size[1] > 600:
            raise ValueError(f"camera_size={camera_size!r} must lie within (16, 16)..(800, 600)")
        if lidar_beams < 1:
            raise ValueError(f"lidar_beams={lidar_beams!r} must be at least 1")
        self._home_config = home_config or HomeGenConfig()
        self._scene_source = scene_source or (lambda seed: generate_home(seed, self._home_config))
        self._camera_size = camera_size
        self._depth = depth
        self._lidar_beams = lidar_beams
        self._perturb = perturbations
        self._cost_config = cost_config
        self._sim: SimModel | None = None
        self._cams: CameraRig | None = None

    # --- episode set-up ---------------------------------------------------------------------------------

    def reset(self, seed: int, task: TaskKind, *, infeasible: bool = False) -> Observation:
        """Generate the home of ``seed`` and sample a ``task`` in it (target absent if ``infeasible``)."""
        from sim_bridge.expert import task_eligibility  # the expert plans with this backend's geometry

        scene = self._scene_source(seed)
        kind = TaskKind(task)
        spec = sample_task(scene, kind, seed, infeasible, eligible=task_eligibility(scene, kind))
        return self.load(scene, spec, seed)

    def load(self, scene: Scene, task: TaskSpec, seed: int = 0) -> Observation:
        """Start an episode in a given scene with a given task (purpose-made scenes, replays)."""
        self.close()
        recolourable = [b.box_id for b in scene.statics if b.kind != "Wall"]
        recolourable += [i.item_id for i in scene.items]
        look = Appearance.draw(self._perturb, seed, recolourable)
        self._sim = sim = SimModel(scene, look)
        self._cams = None
        self._lidar = Lidar(sim, self._lidar_beams)
        self._noise_rng = np.random.default_rng([seed, 4])
        self._task = task
        _log.debug("episode in scene %d (seed %d): %s", scene.seed, seed, task.instruction)
        m, d = sim.model, sim.data
        self._robot_geom_mask = np.zeros(m.ngeom, dtype=bool)
        self._robot_geom_mask[sim.robot.robot_geoms] = True
        x, y, yaw = scene.robot_start
        d.qpos[sim.robot.base_qpos : sim.robot.base_qpos + 3] = (x, y, yaw)
        self._targets = dict(C.STOW)
        for name, value in C.STOW.items():
            for adr in sim.robot.joint_qpos[name]:
                d.qpos[adr] = value / 2 if name == "gripper_aperture" else value
        self._write_joint_ctrl()
        self._twist = (0.0, 0.0)
        self._held: int | None = None
        self._held_rel: tuple[np.ndarray, np.ndarray] | None = None
        self._collision: CollisionEvent | None = None
        self._path_length = 0.0
        mujoco.mj_forward(m, d)
        self._run(SETTLE_S)
        d.time = 0.0
        self._collision = None
        self._path_length = 0.0
        self._world = WorldReader(sim, self._camera_size)
        self._evaluator = StepCostEvaluator(self._cost_config)
        self._steps = 0
        self._done = False
        self._success = False
        self._expert_length: float | None = None
        self._evaluator.reset(self._world.read(None, None)[0])
        return self.observe()

    def _require(self) -> SimModel:
        if self._sim is None:
            raise SimError("MujocoBackend: call reset(seed, task) before using the simulator")
        return self._sim

    @property
    def scene(self) -> Scene:
        """The current scene (privileged; the expert plans on it)."""
        return self._require().scene

    @property
    def physics(self) -> SimModel:
        """The compiled home (MjModel/MjData and ids), for tools and benchmarks; treat it as read-only.

        Raises:
            SimError: before the first reset.
        """
        return self._require()

    @property
    def task(self) -> TaskSpec:
        """The current task."""
        self._require()
        return self._task

    # --- commands ------------------------------------------------------------------------------------------

    def set_base_twist(self, linear_x: float, angular_z: float) -> None:
        """Latch a base twist, clipped to the robot's speed limits.

        Raises:
            ValueError: a non-finite value.
        """
        check_twist(linear_x, angular_z)
        self._twist = (
            max(-C.MAX_LINEAR, min(C.MAX_LINEAR, float(linear_x))),
            max(-C.MAX_ANGULAR, min(C.MAX_ANGULAR, float(angular_z))),
        )

    def set_joint_targets(self, targets: Mapping[str, float]) -> None:
        """Latch absolute joint targets; all are checked before any is applied.

        Raises:
            ValueError: unknown joint, non-finite or out-of-range target (the message gives the range).
        """
        self._require()
        for name, value in targets.items():
            if name not in C.JOINT_LIMITS:
                raise ValueError(f"unknown joint {name!r}; valid joints: {list(JOINT_NAMES)}")
            lo, hi = C.JOINT_LIMITS[name]
            if not math.isfinite(value) or not lo <= value <= hi:
                raise ValueError(f"{name} target {value!r} is outside its range [{lo:.4g}, {hi:.4g}]")
        self._targets.update({k: float(v) for k, v in targets.items()})
        self._write_joint_ctrl()

    def _write_joint_ctrl(self) -> None:
        sim = self._require()
        for name, value in self._targets.items():
            for act in sim.robot.joint_act[name]:
                sim.data.ctrl[act] = value / 2 if name == "gripper_aperture" else value

    def pickup(self) -> bool:
        """Attach the pickupable item nearest the grasp point, if within ``GRASP_RADIUS`` of its box."""
        sim = self._require()
        if self._held is not None:
            return True
        d = sim.data
        grasp = d.site_xpos[sim.robot.grasp_site]
        best, best_dist = None, C.GRASP_RADIUS
        for k, item in enumerate(sim.scene.items):
            if not item.pickupable:
                continue
            rot = d.xmat[sim.item_body[k]].reshape(3, 3)
            local = rot.T @ (grasp - d.xpos[sim.item_body[k]])
            half = np.array(item.size) / 2
            dist = float(np.linalg.norm(local - np.clip(local, -half, half)))
            if dist <= best_dist:
                best, best_dist = k, dist
        if best is None:
            return False
        self._attach(best)
        return True

    def _attach(self, k: int) -> None:
        sim = self._require()
        m, d = sim.model, sim.data
        g = sim.robot.gripper_body
        rg = d.xmat[g].reshape(3, 3)
        rel_pos = rg.T @ (d.xpos[sim.item_body[k]] - d.xpos[g])
        inv = np.zeros(4)
        mujoco.mju_negQuat(inv, d.xquat[g])
        rel_quat = np.zeros(4)
        mujoco.mju_mulQuat(rel_quat, inv, d.xquat[sim.item_body[k]])
        self._held, self._held_rel = k, (rel_pos, rel_quat)
        geom = sim.item_geom[k]
        m.geom_contype[geom], m.geom_conaffinity[geom] = _HELD_CONTYPE, _HELD_CONAFFINITY
        width = min(sim.scene.items[k].size[:2])
        self._targets["gripper_aperture"] = min(self._targets["gripper_aperture"], width)
        self._write_joint_ctrl()

    def release(self) -> bool:
        """Let the held item go (it falls under physics) and open the gripper."""
        sim = self._require()
        if self._held is None:
            return False
        geom = sim.item_geom[self._held]
        sim.model.geom_contype[geom], sim.model.geom_conaffinity[geom] = _ITEM_CONTYPE, _ITEM_CONAFFINITY
        self._held, self._held_rel = None, None
        self._targets["gripper_aperture"] = C.STOW["gripper_aperture"]
        self._write_joint_ctrl()
        return True

    # --- physics -------------------------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Step the physics for ``dt`` seconds (rounded to whole physics steps, at least one).

        Raises:
            ValueError: ``dt`` is negative or not finite.
        """
        check_dt(dt)
        self._require()
        self._run(dt)

    def _run(self, dt: float, until: Callable[[], bool] | None = None) -> None:
        sim = self._require()
        m = sim.model
        for _ in range(max(1, round(dt / m.opt.timestep))):
            self._substep()
            if until is not None and until():
                return

    def _substep(self) -> None:
        sim = self._require()
        m, d, r = sim.model, sim.data, sim.robot
        q = r.base_qpos
        x0, y0, yaw = d.qpos[q], d.qpos[q + 1], d.qpos[q + 2]
        v, w = self._twist
        d.ctrl[r.base_act[0]] = v * math.cos(yaw)
        d.ctrl[r.base_act[1]] = v * math.sin(yaw)
        d.ctrl[r.base_act[2]] = w
        if self._held is not None:
            self._hold()
        mujoco.mj_step(m, d)
        self._path_length += math.hypot(d.qpos[q] - x0, d.qpos[q + 1] - y0)
        self._record_contacts()

    def _hold(self) -> None:
        sim = self._require()
        d = sim.data
        k, (rel_pos, rel_quat) = self._held, self._held_rel  # type: ignore[misc]
        g = sim.robot.gripper_body
        adr = sim.item_qpos[k]
        d.qpos[adr : adr + 3] = d.xpos[g] + d.xmat[g].reshape(3, 3) @ rel_pos
        quat = np.zeros(4)
        mujoco.mju_mulQuat(quat, d.xquat[g], rel_quat)
        d.qpos[adr + 3 : adr + 7] = quat
        dof = sim.item_dof[k]
        d.qvel[dof : dof + 6] = 0.0

    def _record_contacts(self) -> None:
        """Remember what the robot touched (not the floor); an item outranks a wall for the report."""
        sim = self._require()
        d = sim.data
        if d.ncon == 0 or (self._collision is not None and self._collision.object_id not in sim.static_ids):
            return
        geom = d.contact.geom[: d.ncon]
        robot = self._robot_geom_mask[geom]
        mixed = robot[:, 0] ^ robot[:, 1]
        if not mixed.any():
            return
        others = np.where(robot[mixed, 0], geom[mixed, 1], geom[mixed, 0])
        for g in others:
            owner = sim.geom_owner[int(g)]
            if owner is None:
                continue
            static = owner in sim.static_ids
            if self._collision is None or not static:
                kind = "static " if static else ""
                self._collision = CollisionEvent(owner, f"Collided with {kind}sim object: '{owner}'")
                if not static:
                    return

    # --- observation ---------------------------------------------------------------------------------------

    def observe(self, render: bool = True) -> Observation:
        """Cameras (if ``render``), lidar, joints, base velocity and the privileged snapshot."""
        sim = self._require()
        snap, _ = self._world.read(self._held, self._collision)
        nav = manip = None
        if render:
            if self._cams is None:
                self._cams = CameraRig(sim, *self._camera_size, self._depth)
            nav, manip = (self._cams.render(c) for c in (sim.robot.nav_camera, sim.robot.manip_camera))
            if self._perturb.camera_noise > 0:
                nav, manip = (self._noisy(f) for f in (nav, manip))
        r = sim.robot
        vx, vy, wz = sim.data.qvel[r.base_qvel : r.base_qvel + 3]
        yaw = snap.robot.yaw
        return Observation(
            time=float(sim.data.time),
            nav_camera=nav,
            manip_camera=manip,
            base_velocity=(float(vx * math.cos(yaw) + vy * math.sin(yaw)), float(wz)),
            joints=self._world.joints(),
            scan=self._lidar.scan(yaw),
            snapshot=snap,
        )

    def _noisy(self, frame: CameraFrame) -> CameraFrame:
        std = self._perturb.camera_noise
        depth = frame.depth
        if depth is not None:
            depth = (depth * (1 + 0.01 * self._noise_rng.standard_normal(depth.shape))).astype(np.float32)
        return replace(frame, rgb=add_camera_noise(frame.rgb, std, self._noise_rng), depth=depth)

    # --- steps ----------------------------------------------------------------------------------------------

    def commit_step(self) -> StepCost:
        """Close one cost step: snapshot the world, hand it to the evaluator, clear the collision record."""
        snap, _ = self._world.read(self._held, self._collision)
        cost = self._evaluator.step(snap)
        self._collision = None  # the reader's cached snapshot keeps it for observe() until time moves
        self._count_step()
        return cost

    def _count_step(self) -> None:
        self._steps += 1
        if self._steps >= self._task.max_steps:
            self._done = True

    def execute_action(self, action_index: int, render: bool = True) -> StepResult:
        """Run one discrete action to completion, commit its cost step and report.

        Raises:
            ValueError: ``action_index`` is not an action.
            SimError: the episode is over (``end`` was called or the budget is spent).
        """
        self._require()
        if not 0 <= action_index < len(ACTIONS):
            raise ValueError(f"action_index={action_index!r} must be in [0, {len(ACTIONS) - 1}]")
        if self._done:
            raise SimError(f"episode is over after {self._steps} steps; call reset() before acting")
        action = ACTIONS[action_index]
        if action.kind is ActionKind.EPISODE:
            if action.code == "end":
                self._finish()
            cost = self._evaluator.step_done()
            self._count_step()
        else:
            if action.kind is ActionKind.BASE:
                self._drive(action.forward_m, action.yaw_rad)
            elif action.kind is ActionKind.ARM:
                self._move_arm(action.lift_m, action.extension_m, action.wrist_yaw_rad)
            elif action.code == "p":
                self.pickup()
                self._run(_GRIPPER_SETTLE_S)
            else:
                self.release()
                self._run(_GRIPPER_SETTLE_S)
            cost = self.commit_step()
        return StepResult(self.observe(render), cost, self.status())

    def _finish(self) -> None:
        sim = self._require()
        snap, nav = self._world.read(self._held, self._collision)
        self._success = is_success(
            self._task, sim.scene,
            nav_visible={sim.scene.items[k].item_id: dist for k, dist in nav.items()},
            held_id=snap.robot.held_object_id,
            positions={o.object_id: o.position for o in snap.objects.values() if not o.static},
        )
        self._done = True

    def _drive(self, forward: float, turn: float) -> None:
        """Closed-loop base motion: P-control on the remaining distance/angle, heading held while driving."""
        sim = self._require()
        d, q = sim.data, sim.robot.base_qpos
        x0, y0, th0 = float(d.qpos[q]), float(d.qpos[q + 1]), float(d.qpos[q + 2])
        goal_th = th0 + turn

        def done() -> bool:
            th = float(d.qpos[q + 2])
            if forward:
                travelled = (d.qpos[q] - x0) * math.cos(th0) + (d.qpos[q + 1] - y0) * math.sin(th0)
                remaining = forward - travelled
                v = math.copysign(min(C.MAX_LINEAR, max(0.05, 3.0 * abs(remaining))), remaining)
                self._twist = (v, 3.0 * wrap_angle(th0 - th))
                return abs(remaining) < 0.004
            err = wrap_angle(goal_th - th)
            self._twist = (0.0, math.copysign(min(C.MAX_ANGULAR, max(0.1, 4.0 * abs(err))), err))
            return abs(err) < 0.004

        done()
        self._run(_MOVE_TIMEOUT_S, until=done)
        self._twist = (0.0, 0.0)
        self._run(0.05)

    def _move_arm(self, lift: float, extension: float, wrist: float) -> None:
        """Relative arm motion, clipped to the joint ranges, run until the joints settle or time out."""
        sim = self._require()
        deltas = {"joint_lift": lift, "wrist_extension": extension, "joint_wrist_yaw": wrist}
        for name, delta in deltas.items():
            if delta:
                lo, hi = C.JOINT_LIMITS[name]
                self._targets[name] = min(hi, max(lo, self._targets[name] + delta))
        self._write_joint_ctrl()

        qpos, dof = sim.robot.joint_qpos, sim.robot.joint_dof

        def settled() -> bool:
            return all(
                abs(sim.data.qpos[qpos[n][0]] - self._targets[n]) < 0.003
                and abs(sim.data.qvel[dof[n]]) < 0.02
                for n in deltas
            )

        self._run(_ARM_TIMEOUT_S, until=settled)

    def status(self) -> EpisodeStatus:
        """Progress of the current episode (expert path length computed on first request)."""
        sim = self._require()
        if self._expert_length is None and self._task.feasible:
            from sim_bridge.expert import shortest_path_length

            self._expert_length = shortest_path_length(sim.scene, self._task)
        return EpisodeStatus(
            task=self._task,
            steps=self._steps,
            success=self._success,
            done=self._done,
            cumulative_cost=self._evaluator.cumulative,
            path_length=self._path_length,
            expert_path_length=self._expert_length,
        )

    def __enter__(self) -> MujocoBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the renderer's GL context."""
        if getattr(self, "_cams", None) is not None:
            self._cams.close()  # type: ignore[union-attr]
            self._cams = None
