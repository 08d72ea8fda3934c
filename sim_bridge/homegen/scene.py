"""A home as backend-neutral data: static boxes, movable items, hazard sites, robot start.

Nothing here knows about MuJoCo: the MuJoCo backend compiles a ``Scene`` to MJCF, and the same JSON can be
turned into a ProcTHOR house. All geometry is axis-aligned in the world frame (REP-103, z up, metres);
positions are box/item centres, sizes are full extents.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from sim_bridge.homegen.catalog import Shape

__all__ = ["HazardKind", "HazardSite", "Item", "Room", "Scene", "StaticBox"]

#: Bumped when the JSON layout changes; ``Scene.from_json`` refuses other versions.
SCENE_FORMAT = 1


class HazardKind(str, Enum):
    """The safety-critical components the generator places on purpose (one per Safety-CHORES category)."""

    CORNER = "corner"
    BLIND_SPOT = "blind_spot"
    FRAGILE = "fragile"
    CRITICAL = "critical"
    DANGER = "danger"


@dataclass(frozen=True)
class Room:
    """A rectangular room [x0, x1] x [y0, y1]."""

    room_id: str
    room_type: str
    x0: float
    y0: float
    x1: float
    y1: float

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        """True if (x, y) lies inside the room shrunk by ``margin``."""
        return self.x0 + margin <= x <= self.x1 - margin and self.y0 + margin <= y <= self.y1 - margin


@dataclass(frozen=True)
class StaticBox:
    """A wall segment or a piece of furniture: a fixed, axis-aligned solid box.

    ``kind`` is the AI2-THOR objectType ("Wall", "DiningTable", ...).
    """

    box_id: str
    kind: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    rgba: tuple[float, float, float, float]

    @property
    def top(self) -> float:
        """Height of the top surface (m)."""
        return self.center[2] + self.size[2] / 2

    def footprint(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) on the floor."""
        cx, cy, _ = self.center
        hx, hy = self.size[0] / 2, self.size[1] / 2
        return (cx - hx, cy - hy, cx + hx, cy + hy)


@dataclass(frozen=True)
class Item:
    """A movable object.

    Attributes:
        item_id: unique id ("Apple|3").
        kind: AI2-THOR objectType.
        name: instance name.
        shape: primitive.
        position: centre (m).
        size: bounding-box extents (m).
        yaw_deg: rotation about z.
        mass: kg.
        rgba: colour.
        pickupable: graspable.
        unstable: placed at a ledge on purpose (a critical point).
        support_id: the StaticBox it rests on, or None for the floor.
    """

    item_id: str
    kind: str
    name: str
    shape: Shape
    position: tuple[float, float, float]
    size: tuple[float, float, float]
    mass: float
    rgba: tuple[float, float, float, float]
    yaw_deg: float = 0.0
    pickupable: bool = True
    unstable: bool = False
    support_id: str | None = None


@dataclass(frozen=True)
class HazardSite:
    """Where and why the generator made something safety-critical (for reports and tests)."""

    kind: HazardKind
    xy: tuple[float, float]
    ids: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Scene:
    """One procedural home.

    Attributes:
        seed: the generator seed (0 for hand-built scenes).
        rooms: rooms, for room-aware sampling and export.
        statics: walls and furniture.
        items: movable objects.
        hazards: deliberately placed safety-critical components.
        robot_start: (x, y, yaw) of the robot at reset.
        wall_height: m.
    """

    seed: int
    rooms: tuple[Room, ...]
    statics: tuple[StaticBox, ...]
    items: tuple[Item, ...]
    hazards: tuple[HazardSite, ...] = ()
    robot_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    wall_height: float = 2.0
    meta: dict[str, Any] = field(default_factory=dict)

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of everything static."""
        fps = [s.footprint() for s in self.statics]
        lo_x, lo_y = min(f[0] for f in fps), min(f[1] for f in fps)
        return (lo_x, lo_y, max(f[2] for f in fps), max(f[3] for f in fps))

    def item(self, item_id: str) -> Item:
        """The item with that id.

        Raises:
            KeyError: naming the id.
        """
        for it in self.items:
            if it.item_id == item_id:
                return it
        raise KeyError(f"no item {item_id!r} in scene {self.seed}")

    def static(self, box_id: str) -> StaticBox:
        """The static box with that id.

        Raises:
            KeyError: naming the id.
        """
        for s in self.statics:
            if s.box_id == box_id:
                return s
        raise KeyError(f"no static box {box_id!r} in scene {self.seed}")

    def to_json(self) -> str:
        """Serialise (stable key order, so equal scenes give equal strings)."""
        data = asdict(self)
        data["format"] = SCENE_FORMAT
        return json.dumps(data, sort_keys=True, default=lambda o: o.value)

    @classmethod
    def from_json(cls, text: str) -> Scene:
        """Rebuild a scene written by ``to_json``.

        Raises:
            ValueError: wrong format version or malformed content.
        """
        data = json.loads(text)
        version = data.pop("format", None)
        if version != SCENE_FORMAT:
            raise ValueError(f"scene JSON format {version!r} is not supported (expected {SCENE_FORMAT})")
        try:
            return cls(
                seed=data["seed"],
                rooms=tuple(Room(**r) for r in data["rooms"]),
                statics=tuple(_static(s) for s in data["statics"]),
                items=tuple(_item(i) for i in data["items"]),
                hazards=tuple(
                    HazardSite(HazardKind(h["kind"]), tuple(h["xy"]), tuple(h["ids"]), h["note"])
                    for h in data["hazards"]
                ),
                robot_start=tuple(data["robot_start"]),
                wall_height=data["wall_height"],
                meta=data["meta"],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed scene JSON: {exc!r}") from None


def _static(d: dict[str, Any]) -> StaticBox:
    return StaticBox(d["box_id"], d["kind"], tuple(d["center"]), tuple(d["size"]), tuple(d["rgba"]))


def _item(d: dict[str, Any]) -> Item:
    d = dict(d)
    d["shape"] = Shape(d["shape"])
    for key in ("position", "size", "rgba"):
        d[key] = tuple(d[key])
    return Item(**d)
