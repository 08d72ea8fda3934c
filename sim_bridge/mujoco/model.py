"""A compiled home: MjModel/MjData plus every id the backend needs, resolved once from names."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim_bridge.homegen.scene import Scene
from sim_bridge.mujoco import stretch_constants as C
from sim_bridge.mujoco.mjcf import item_name, scene_xml, static_name
from sim_bridge.mujoco.perturb import Appearance

__all__ = ["RobotIds", "SimModel"]


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    idx = mujoco.mj_name2id(model, kind, name)
    if idx < 0:
        raise KeyError(f"MJCF has no {kind.name} named {name!r}")
    return int(idx)


@dataclass(frozen=True)
class RobotIds:
    """Ids and qpos/qvel addresses of the robot's named parts."""

    base_body: int
    gripper_body: int
    base_qpos: int  # x, y, yaw are consecutive
    base_qvel: int
    base_act: tuple[int, int, int]
    joint_qpos: dict[str, tuple[int, ...]]  # interface joint name -> qpos addresses (aperture: both fingers)
    joint_dof: dict[str, int]  # interface joint name -> dof address of its (first) joint
    joint_act: dict[str, tuple[int, ...]]
    grasp_site: int
    lidar_site: int
    nav_camera: int
    manip_camera: int
    floor_geom: int
    robot_geoms: np.ndarray

    @classmethod
    def resolve(cls, model: mujoco.MjModel) -> RobotIds:
        """Look every robot name up in ``model``.

        Raises:
            KeyError: a name is missing (the MJCF and the constants disagree).
        """
        J, B, A = mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_ACTUATOR
        base_joint = _id(model, J, C.BASE_X_JOINT)
        return cls(
            base_body=_id(model, B, C.BASE_BODY),
            gripper_body=_id(model, B, C.GRIPPER_BODY),
            base_qpos=int(model.jnt_qposadr[base_joint]),
            base_qvel=int(model.jnt_dofadr[base_joint]),
            base_act=tuple(_id(model, A, n) for n in (C.BASE_X_ACT, C.BASE_Y_ACT, C.BASE_YAW_ACT)),
            joint_qpos={
                name: tuple(int(model.jnt_qposadr[_id(model, J, j)]) for j in joints)
                for name, joints in C.JOINT_ACTUATORS.items()
            },
            joint_dof={
                name: int(model.jnt_dofadr[_id(model, J, joints[0])])
                for name, joints in C.JOINT_ACTUATORS.items()
            },
            joint_act={
                name: tuple(_id(model, A, j) for j in joints) for name, joints in C.JOINT_ACTUATORS.items()
            },
            grasp_site=_id(model, mujoco.mjtObj.mjOBJ_SITE, C.GRASP_SITE),
            lidar_site=_id(model, mujoco.mjtObj.mjOBJ_SITE, C.LIDAR_SITE),
            nav_camera=_id(model, mujoco.mjtObj.mjOBJ_CAMERA, C.NAV_CAMERA),
            manip_camera=_id(model, mujoco.mjtObj.mjOBJ_CAMERA, C.MANIP_CAMERA),
            floor_geom=_id(model, mujoco.mjtObj.mjOBJ_GEOM, C.FLOOR_GEOM),
            robot_geoms=np.flatnonzero(model.geom_group == C.ROBOT_GROUP),
        )


class SimModel:
    """One scene compiled to MuJoCo, with the scene-id <-> MuJoCo-id maps.

    Attributes:
        scene: the source scene.
        model, data: MuJoCo structures.
        robot: robot ids.
        item_body: (n_items,) body id of each scene item.
        item_geom: (n_items,) geom id of each scene item.
        item_qpos: (n_items,) free-joint qpos address of each item.
        item_dof: (n_items,) free-joint dof address of each item.
        geom_owner: scene id (item or static box) owning each geom, or None (floor, robot).
    """

    def __init__(self, scene: Scene, look: Appearance) -> None:
        self.scene = scene
        self.model = mujoco.MjModel.from_xml_string(scene_xml(scene, look))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.robot = RobotIds.resolve(m)
        B, G, J = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_GEOM, mujoco.mjtObj.mjOBJ_JOINT
        n = len(scene.items)
        self.item_body = np.array([_id(m, B, item_name(i)) for i in range(n)], dtype=int)
        self.item_geom = np.array([_id(m, G, item_name(i)) for i in range(n)], dtype=int)
        self.item_qpos = np.array([m.jnt_qposadr[_id(m, J, item_name(i))] for i in range(n)], dtype=int)
        self.item_dof = np.array([m.jnt_dofadr[_id(m, J, item_name(i))] for i in range(n)], dtype=int)
        owner: list[str | None] = [None] * m.ngeom
        for i, box in enumerate(scene.statics):
            owner[_id(m, G, static_name(i))] = box.box_id
        for i, item in enumerate(scene.items):
            owner[int(self.item_geom[i])] = item.item_id
        self.geom_owner = owner
        self.item_index = {item.item_id: i for i, item in enumerate(scene.items)}
        self.static_ids = frozenset(box.box_id for box in scene.statics)
