"""Procedural homes as backend-neutral data (no simulator import): generator, builder, catalog, occupancy."""

from sim_bridge.homegen.builder import SceneBuilder
from sim_bridge.homegen.catalog import FURNITURE, ITEMS, FurnitureType, ItemType, Shape, item_type, words
from sim_bridge.homegen.generator import HomeGenConfig, generate_home
from sim_bridge.homegen.occupancy import OccupancyGrid
from sim_bridge.homegen.scene import HazardKind, HazardSite, Item, Room, Scene, StaticBox

__all__ = [
    "FURNITURE",
    "ITEMS",
    "FurnitureType",
    "HazardKind",
    "HazardSite",
    "HomeGenConfig",
    "Item",
    "ItemType",
    "OccupancyGrid",
    "Room",
    "Scene",
    "SceneBuilder",
    "Shape",
    "StaticBox",
    "generate_home",
    "item_type",
    "words",
]
