"""The message types bag tools can decode: rosbags' Kilted store plus what our bags need beyond it.

Decoding is split from IO (STYLE 11): readers hand out raw CDR bytes and this typestore turns them into
rosbags message objects. Kilted's store has every common ROS 2 type. On top of it we register
``nav2_msgs/msg/Costmap`` (its lethal cells are obstacles for the audit; sqlite3 bags carry no
definitions, so a costmap recorded there would otherwise be undecodable) and, for the recorder, any type
whose ``.msg`` file is installed under an ament prefix's ``share/<pkg>/msg/``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype, TypesysError
from rosbags.typesys.store import Typestore

__all__ = ["EXTRA_MSG_DEFINITIONS", "make_typestore", "msg_search_roots", "register_installed_type"]

_LOG = logging.getLogger(__name__)

#: Interface definitions not in rosbags' stores (fields as in ros-navigation/navigation2 nav2_msgs/msg/,
#: comments dropped). Order matters: a type's dependencies come first.
EXTRA_MSG_DEFINITIONS: dict[str, str] = {
    "nav2_msgs/msg/CostmapMetaData": (
        "builtin_interfaces/Time map_load_time\n"
        "builtin_interfaces/Time update_time\n"
        "string layer\n"
        "float32 resolution\n"
        "uint32 size_x\n"
        "uint32 size_y\n"
        "geometry_msgs/Pose origin\n"
    ),
    "nav2_msgs/msg/Costmap": (
        "std_msgs/Header header\n"
        "nav2_msgs/CostmapMetaData metadata\n"
        "uint8[] data\n"
    ),
}


@cache
def _known_fielddefs() -> Mapping[str, Any]:
    """Field definitions of every type we know (Kilted plus the extras), built once per process."""
    store = get_typestore(Stores.ROS2_KILTED)
    for name, text in EXTRA_MSG_DEFINITIONS.items():
        store.register(get_types_from_msg(text, name))
    return MappingProxyType(dict(store.fielddefs))


def make_typestore(msgtypes: Iterable[str] | None = None) -> Typestore:
    """A fresh typestore (so definitions a bag registers never leak into another bag's decoding) with every
    known type, or only ``msgtypes`` and the types they reference: a bag reader generates a class per
    registered type, so a bag's own types open it much faster than the whole store."""
    known = _known_fielddefs()
    if msgtypes is None:
        selected = dict(known)
    else:
        selected = {}
        pending = [t for t in msgtypes if t in known]
        while pending:
            name = pending.pop()
            if name not in selected:
                selected[name] = known[name]
                pending.extend(t for t in _referenced_types(known[name][1]) if t in known)
    store = get_typestore(Stores.EMPTY)
    store.register(selected)
    return store


def msg_search_roots() -> list[Path]:
    """Install prefixes whose ``share/<pkg>/msg/`` may hold ``.msg`` files: AMENT_PREFIX_PATH, then this
    interpreter's prefix (where the ROS wheels put them)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return [Path(p) for p in [*prefixes, sys.prefix]]


def _referenced_types(fields: Iterable[tuple[str, tuple[Nodetype, object]]]) -> set[str]:
    found: set[str] = set()
    for _, (kind, detail) in fields:
        if kind is Nodetype.NAME:
            found.add(str(detail))
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_kind, sub_detail), _count = detail  # type: ignore[misc]
            if sub_kind is Nodetype.NAME:
                found.add(str(sub_detail))
    return found


def register_installed_type(store: Typestore, msgtype: str, roots: Iterable[Path] | None = None) -> bool:
    """Make ``msgtype`` (and every type it references) known to ``store`` from installed ``.msg`` files.

    Returns True when the type is (now) known, False when some ``.msg`` file was not found; the caller
    decides whether that is fatal (the recorder skips the topic with a warning).
    """
    search = list(roots) if roots is not None else msg_search_roots()
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs:
            continue
        pkg, _, short = name.partition("/msg/")
        candidates = [root / "share" / pkg / "msg" / f"{short}.msg" for root in search]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            _LOG.debug("no .msg file for %s under %s", name, [str(r) for r in search])
            return False
        try:
            types = get_types_from_msg(path.read_text(), name)
        except TypesysError as exc:
            _LOG.warning("cannot parse %s: %s", path, exc)
            return False
        store.register(types)
        for _consts, fields in types.values():
            pending.extend(t for t in _referenced_types(fields) if t not in store.fielddefs)
    return True
