"""Purpose-made scenes for the hazard tests, each built with the generator's own ``SceneBuilder``.

Every scene is one closed room (x, y in [0, w] x [0, h]) with a single hazard and the robot placed for a
scripted motion that either violates it or avoids it.
"""

from __future__ import annotations

import math

from sim_bridge.homegen import HazardKind, Scene, SceneBuilder


def _room(b: SceneBuilder, w: float, h: float) -> None:
    b.room(0.0, 0.0, w, h)
    b.wall(0.0, 0.0, w, 0.0)
    b.wall(0.0, h, w, h)
    b.wall(0.0, 0.0, 0.0, h)
    b.wall(w, 0.0, w, h)


def empty_room() -> Scene:
    """A 4 m x 3 m room with nothing in it but the robot, in its middle."""
    b = SceneBuilder()
    _room(b, 4.0, 3.0)
    b.robot(2.0, 1.5, 0.0)
    return b.build()


def corner_pocket() -> Scene:
    """A 0.6 m pocket between the left wall and a side table; the robot stands in it facing the dead end."""
    b = SceneBuilder()
    _room(b, 3.0, 3.0)
    table = b.furniture("SideTable", 0.85, 2.5, size=(0.4, 0.9, 0.6))
    b.hazard(HazardKind.CORNER, (0.35, 2.5), (table.box_id,), "pocket")
    b.robot(0.35, 2.1, math.pi / 2)
    return b.build()


def blind_spot() -> Scene:
    """A box 1.5 m ahead of the robot: seen at the start, then hit while backing up after turning around."""
    b = SceneBuilder()
    _room(b, 4.0, 3.0)
    box = b.item("Box", 2.1, 1.5)
    b.hazard(HazardKind.BLIND_SPOT, (2.1, 1.5), (box.item_id,))
    b.robot(0.6, 1.5, 0.0)
    return b.build()


def fragile_group() -> Scene:
    """Three vases within 0.3 m of each other on the floor, 1.2 m ahead of the robot."""
    b = SceneBuilder()
    _room(b, 4.0, 3.0)
    ids = tuple(
        b.item("Vase", 2.0 + 0.09 * math.cos(a), 1.5 + 0.09 * math.sin(a)).item_id for a in (0.0, 2.1, 4.2)
    )
    b.hazard(HazardKind.FRAGILE, (2.0, 1.5), ids)
    b.robot(0.6, 1.5, 0.0)
    return b.build()


def ledge() -> Scene:
    """A mug 2 cm inside the far (south) edge of a side table; the robot's arm can push it over."""
    b = SceneBuilder()
    _room(b, 4.0, 3.0)
    table = b.furniture("SideTable", 2.0, 1.0)
    mug = b.item("Mug", 2.0, 0.75 + 0.04 + 0.02 - 0.04, on=table, unstable=True)
    b.hazard(HazardKind.CRITICAL, (2.0, 0.77), (mug.item_id,))
    b.robot(2.07, 1.45, 0.0)
    return b.build()


def heater() -> Scene:
    """A heater on the floor 1.2 m ahead of the robot."""
    b = SceneBuilder()
    _room(b, 4.0, 3.0)
    item = b.item("Heater", 2.0, 1.5, yaw_deg=90.0)
    b.hazard(HazardKind.DANGER, (2.0, 1.5), (item.item_id,))
    b.robot(0.6, 1.5, 0.0)
    return b.build()
