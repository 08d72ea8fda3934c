"""Hand-assembly of scenes: the generator's building blocks, also used by tests for purpose-made scenes.

Every placement goes through one builder so hand-built and generated scenes share id conventions
("Kind|n"), support heights and hazard bookkeeping.
"""

from __future__ import annotations

from sim_bridge.homegen.catalog import FURNITURE, item_type
from sim_bridge.homegen.scene import HazardKind, HazardSite, Item, Room, Scene, StaticBox

__all__ = ["WALL_RGBA", "WALL_THICKNESS", "SceneBuilder"]

WALL_THICKNESS = 0.1
WALL_RGBA = (0.92, 0.9, 0.85, 1.0)


class SceneBuilder:
    """Collects rooms, walls, furniture, items and hazard sites, then freezes them into a ``Scene``."""

    def __init__(self, seed: int = 0, wall_height: float = 2.0) -> None:
        self.seed = seed
        self.wall_height = wall_height
        self.rooms: list[Room] = []
        self.statics: list[StaticBox] = []
        self.items: list[Item] = []
        self.hazards: list[HazardSite] = []
        self.robot_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._counts: dict[str, int] = {}

    def _next_id(self, kind: str) -> str:
        n = self._counts.get(kind, 0) + 1
        self._counts[kind] = n
        return f"{kind}|{n}"

    def room(self, x0: float, y0: float, x1: float, y1: float, room_type: str = "Room") -> Room:
        """Record a room (walls are added separately, so neighbouring rooms can share one)."""
        room = Room(f"{room_type}|{len(self.rooms) + 1}", room_type, x0, y0, x1, y1)
        self.rooms.append(room)
        return room

    def wall(self, x0: float, y0: float, x1: float, y1: float) -> StaticBox:
        """An axis-aligned wall segment along its centre line from (x0, y0) to (x1, y1).

        Raises:
            ValueError: the segment is neither horizontal nor vertical, or has zero length.
        """
        if (x0 != x1) == (y0 != y1):
            raise ValueError(f"wall ({x0}, {y0})-({x1}, {y1}) must be axis-aligned with non-zero length")
        t = WALL_THICKNESS
        dx = abs(x1 - x0) + t if x0 != x1 else t
        dy = abs(y1 - y0) + t if y0 != y1 else t
        box = StaticBox(
            self._next_id("Wall"),
            "Wall",
            ((x0 + x1) / 2, (y0 + y1) / 2, self.wall_height / 2),
            (dx, dy, self.wall_height),
            WALL_RGBA,
        )
        self.statics.append(box)
        return box

    def wall_with_door(
        self, x0: float, y0: float, x1: float, y1: float, door_at: float, width: float = 1.0
    ) -> None:
        """A wall segment with a doorway of ``width`` centred at ``door_at`` (coordinate along the wall)."""
        horizontal = y0 == y1
        a, b = (x0, x1) if horizontal else (y0, y1)
        lo, hi = door_at - width / 2, door_at + width / 2
        for s, e in ((a, lo), (hi, b)):
            if e - s > 1e-6:
                if horizontal:
                    self.wall(s, y0, e, y1)
                else:
                    self.wall(x0, s, x1, e)

    def furniture(
        self,
        kind: str,
        x: float,
        y: float,
        size: tuple[float, float, float] | None = None,
        rotate: bool = False,
    ) -> StaticBox:
        """A piece of furniture standing on the floor, centred at (x, y); ``rotate`` swaps its x/y extents.

        Raises:
            KeyError: unknown furniture kind.
        """
        if kind not in FURNITURE:
            raise KeyError(f"unknown furniture {kind!r}; known: {sorted(FURNITURE)}")
        ftype = FURNITURE[kind]
        sx, sy, sz = size or ftype.size
        if rotate:
            sx, sy = sy, sx
        box = StaticBox(self._next_id(kind), kind, (x, y, sz / 2), (sx, sy, sz), ftype.rgba)
        self.statics.append(box)
        return box

    def item(
        self,
        kind: str,
        x: float,
        y: float,
        on: StaticBox | None = None,
        yaw_deg: float = 0.0,
        unstable: bool = False,
        rgba: tuple[float, float, float, float] | None = None,
    ) -> Item:
        """A movable object resting on the floor or on top of ``on``.

        Raises:
            KeyError: unknown item kind.
        """
        itype = item_type(kind)
        base = on.top if on is not None else 0.0
        item_id = self._next_id(kind)
        item = Item(
            item_id=item_id,
            kind=kind,
            name=f"{kind}_{item_id.split('|')[1]}",
            shape=itype.shape,
            position=(x, y, base + itype.size[2] / 2 + 0.002),
            size=itype.size,
            mass=itype.mass,
            rgba=rgba or itype.rgba,
            yaw_deg=yaw_deg,
            pickupable=itype.pickupable,
            unstable=unstable,
            support_id=on.box_id if on is not None else None,
        )
        self.items.append(item)
        return item

    def hazard(
        self, kind: HazardKind, xy: tuple[float, float], ids: tuple[str, ...] = (), note: str = ""
    ) -> None:
        """Record a deliberately placed safety-critical component."""
        self.hazards.append(HazardSite(kind, (round(xy[0], 4), round(xy[1], 4)), ids, note))

    def robot(self, x: float, y: float, yaw: float = 0.0) -> None:
        """Where the robot starts (yaw in rad)."""
        self.robot_start = (x, y, yaw)

    def build(self, **meta: object) -> Scene:
        """Freeze everything into a scene."""
        return Scene(
            seed=self.seed,
            rooms=tuple(self.rooms),
            statics=tuple(self.statics),
            items=tuple(self.items),
            hazards=tuple(self.hazards),
            robot_start=self.robot_start,
            wall_height=self.wall_height,
            meta=dict(meta),
        )
