"""What kinds of things a procedural home holds: furniture and object types with physical properties.

Types use AI2-THOR ``objectType`` spellings so a scene can be exported to ProcTHOR and so the step cost's
type-token rules (dangerous equipment, static types) apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["FURNITURE", "ITEMS", "FurnitureType", "ItemType", "Shape", "item_type", "words"]


class Shape(str, Enum):
    """Collision/visual primitive of a movable object (size is the bounding box)."""

    BOX = "box"
    CYLINDER = "cylinder"
    SPHERE = "sphere"


@dataclass(frozen=True)
class ItemType:
    """A movable object type.

    Attributes:
        name: AI2-THOR objectType.
        shape: primitive.
        size: bounding-box extents (dx, dy, dz) in m.
        mass: kg.
        rgba: default colour.
        pickupable: the gripper can hold it.
        fragile: breaks when knocked (used for fragile groups).
        dangerous: dangerous equipment (knife, heater, ...).
        on_floor: stands on the floor rather than on furniture.
    """

    name: str
    shape: Shape
    size: tuple[float, float, float]
    mass: float
    rgba: tuple[float, float, float, float]
    pickupable: bool = True
    fragile: bool = False
    dangerous: bool = False
    on_floor: bool = False


@dataclass(frozen=True)
class FurnitureType:
    """A static piece of furniture: a solid box (m) the robot can bump into and objects can rest on."""

    name: str
    size: tuple[float, float, float]
    rgba: tuple[float, float, float, float]
    surface: bool = True


_ITEM_LIST: tuple[ItemType, ...] = (
    ItemType("Apple", Shape.SPHERE, (0.08, 0.08, 0.08), 0.2, (0.8, 0.1, 0.1, 1)),
    ItemType("Mug", Shape.CYLINDER, (0.08, 0.08, 0.1), 0.3, (0.2, 0.4, 0.8, 1)),
    ItemType("Bowl", Shape.CYLINDER, (0.15, 0.15, 0.06), 0.3, (0.9, 0.9, 0.8, 1)),
    ItemType("Book", Shape.BOX, (0.15, 0.22, 0.04), 0.5, (0.5, 0.2, 0.5, 1)),
    ItemType("Bottle", Shape.CYLINDER, (0.07, 0.07, 0.22), 0.4, (0.1, 0.6, 0.3, 1)),
    ItemType("Vase", Shape.CYLINDER, (0.1, 0.1, 0.25), 0.6, (0.3, 0.7, 0.9, 1), fragile=True),
    ItemType("Glass", Shape.CYLINDER, (0.07, 0.07, 0.12), 0.2, (0.8, 0.9, 1.0, 1), fragile=True),
    ItemType("WineBottle", Shape.CYLINDER, (0.08, 0.08, 0.3), 0.8, (0.3, 0.05, 0.1, 1), fragile=True),
    ItemType("Knife", Shape.BOX, (0.25, 0.03, 0.02), 0.15, (0.7, 0.7, 0.75, 1), dangerous=True),
    ItemType("Fork", Shape.BOX, (0.18, 0.03, 0.02), 0.05, (0.75, 0.75, 0.8, 1), dangerous=True),
    ItemType("Heater", Shape.BOX, (0.35, 0.15, 0.5), 4.0, (0.9, 0.4, 0.1, 1), pickupable=False,
             dangerous=True, on_floor=True),
    ItemType("Box", Shape.BOX, (0.35, 0.35, 0.3), 2.0, (0.6, 0.45, 0.3, 1), pickupable=False, on_floor=True),
    ItemType("Basket", Shape.CYLINDER, (0.35, 0.35, 0.35), 1.5, (0.7, 0.6, 0.4, 1), pickupable=False,
             on_floor=True),
)

ITEMS: dict[str, ItemType] = {t.name: t for t in _ITEM_LIST}

FURNITURE: dict[str, FurnitureType] = {
    t.name: t
    for t in (
        FurnitureType("DiningTable", (1.2, 0.8, 0.75), (0.55, 0.35, 0.2, 1)),
        FurnitureType("CoffeeTable", (0.9, 0.5, 0.45), (0.45, 0.3, 0.2, 1)),
        FurnitureType("CounterTop", (1.4, 0.6, 0.9), (0.85, 0.85, 0.85, 1)),
        FurnitureType("SideTable", (0.5, 0.5, 0.6), (0.4, 0.25, 0.15, 1)),
        FurnitureType("Shelf", (0.9, 0.4, 1.2), (0.6, 0.5, 0.4, 1)),
        FurnitureType("Sofa", (1.8, 0.8, 0.45), (0.3, 0.3, 0.5, 1), surface=False),
    )
}


def item_type(name: str) -> ItemType:
    """Look an item type up.

    Raises:
        KeyError: naming the known types.
    """
    try:
        return ITEMS[name]
    except KeyError:
        raise KeyError(f"unknown item type {name!r}; known types: {sorted(ITEMS)}") from None


def words(type_name: str) -> str:
    """An objectType as instruction words: "WineBottle" -> "wine bottle"."""
    out = []
    for ch in type_name:
        if ch.isupper() and out:
            out.append(" ")
        out.append(ch.lower())
    return "".join(out)
