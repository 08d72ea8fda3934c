"""Compile a backend-neutral ``Scene`` plus our robot into one MJCF model string.

Statics become geoms of the world body (they never collide with each other), items become free bodies.
Resting items sleep (MuJoCo island sleeping): a settled home costs almost nothing to step, and an item wakes
when touched or when its pose is written (the grasp attachment does that).
Geom/body names are positional ("static_3", "item_7"); ``SceneIndex`` maps them back to scene ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim_bridge.homegen.catalog import Shape
from sim_bridge.homegen.scene import Item, Scene
from sim_bridge.mujoco import stretch_constants as C
from sim_bridge.mujoco.perturb import Appearance
from sim_bridge.mujoco.stretch import robot_actuators_xml, robot_body_xml

__all__ = ["PHYSICS_TIMESTEP", "scene_xml", "static_name", "item_name"]

PHYSICS_TIMESTEP = 0.005


def static_name(index: int) -> str:
    """MJCF geom name of ``scene.statics[index]``."""
    return f"static_{index}"


def item_name(index: int) -> str:
    """MJCF body (and geom) name of ``scene.items[index]``."""
    return f"item_{index}"


def _f(values: tuple[float, ...] | list[float]) -> str:
    return " ".join(f"{v:.6g}" for v in values)


@dataclass(frozen=True)
class _GeomSpec:
    kind: str
    size: tuple[float, ...]


def _item_geom(item: Item) -> _GeomSpec:
    dx, dy, dz = item.size
    if item.shape is Shape.SPHERE:
        return _GeomSpec("sphere", (dx / 2,))
    if item.shape is Shape.CYLINDER:
        return _GeomSpec("cylinder", (max(dx, dy) / 2, dz / 2))
    return _GeomSpec("box", (dx / 2, dy / 2, dz / 2))


def _item_xml(index: int, item: Item, rgba: tuple[float, ...]) -> str:
    geom = _item_geom(item)
    half = math.radians(item.yaw_deg) / 2
    # Spheres need rolling friction or a nudged apple rolls forever.
    contact = 'condim="6" friction="1 0.01 0.01"' if item.shape is Shape.SPHERE else 'condim="4"'
    name = item_name(index)
    return (
        f'<body name="{name}" pos="{_f(item.position)}" quat="{math.cos(half):.6g} 0 0 {math.sin(half):.6g}">'
        f'<freejoint name="{name}"/>'
        f'<geom name="{name}" type="{geom.kind}" size="{_f(geom.size)}" mass="{item.mass}" rgba="{_f(rgba)}" '
        f'group="1" contype="{C.ITEM_BIT}" conaffinity="{C.WORLD_BIT | C.ROBOT_BIT | C.ITEM_BIT}" {contact}/>'
        "</body>"
    )


def scene_xml(scene: Scene, look: Appearance) -> str:
    """The whole MJCF: options, visuals (shadows off), scene geometry, robot and actuators."""
    xmin, ymin, xmax, ymax = scene.bounds()
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    half = max(xmax - xmin, ymax - ymin) / 2 + 1.0
    static_aff = C.ROBOT_BIT | C.ITEM_BIT | C.HELD_BIT
    statics = []
    for i, box in enumerate(scene.statics):
        default = look.wall_rgba if box.kind == "Wall" and look.wall_rgba else box.rgba
        rgba = look.recolour.get(box.box_id, default)
        half_size = tuple(s / 2 for s in box.size)
        statics.append(
            f'<geom name="{static_name(i)}" type="box" pos="{_f(box.center)}" size="{_f(half_size)}" '
            f'rgba="{_f(rgba)}" group="0" contype="{C.WORLD_BIT}" conaffinity="{static_aff}"/>'
        )
    items = [_item_xml(i, it, look.recolour.get(it.item_id, it.rgba)) for i, it in enumerate(scene.items)]
    floor_a, floor_b = look.floor_rgb
    nl = "\n    "
    return f"""<mujoco model="safevla_home_{scene.seed}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_TIMESTEP}" integrator="implicitfast" cone="pyramidal">
    <flag sleep="enable"/>
  </option>
  <visual>
    <global offwidth="800" offheight="600"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="{look.ambient} {look.ambient} {look.ambient}" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
    <map znear="0.002" zfar="10"/>
  </visual>
  <asset>
    <texture name="floor_tex" type="2d" builtin="{look.floor_builtin}"
             rgb1="{_f(floor_a[:3])}" rgb2="{_f(floor_b[:3])}" width="256" height="256"/>
    <material name="floor_mat" texture="floor_tex" texrepeat="8 8" reflectance="{look.reflectance:.3g}"/>
  </asset>
  <worldbody>
    <light name="sun" directional="true" castshadow="false" dir="{_f(look.light_dir)}"
           diffuse="{_f(look.light_diffuse)}"/>
    <geom name="{C.FLOOR_GEOM}" type="plane" pos="{cx:.4f} {cy:.4f} 0" size="{half:.3f} {half:.3f} 0.05"
          material="floor_mat" group="0" contype="{C.WORLD_BIT}" conaffinity="{static_aff}"/>
    {nl.join(statics)}
    {nl.join(items)}
    {robot_body_xml()}
  </worldbody>
  <actuator>
    {robot_actuators_xml()}
  </actuator>
</mujoco>
"""
