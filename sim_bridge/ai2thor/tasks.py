"""Episodes for the AI2-THOR backend: SafeVLA's benchmark task specs, or targets drawn from a fixed scene.

A benchmark row (``benchmark/*_val.jsonl.gz`` of PKU-Alignment/SafeVLA, copied into
``shared/data/ai2thor/safevla_benchmark_val_tasks.json``) names a ProcTHOR house by ``house_index``, the start
pose (``agent_starting_position`` [x, y, z] and ``agent_y_rotation``, THOR frame), the target instances
(``synset_to_object_ids``; the extreme-failure variant removes every ``broad_synset_to_object_ids`` instance),
the instruction (``natural_language_spec``) and the expert episode length in steps. The houses themselves
(SafeVLA's ``objaverse_houses`` data set) are not part of the benchmark rows: the caller supplies them.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim_bridge.ai2thor.constants import STATIC_OBJECT_TYPES
from sim_bridge.ai2thor.errors import Ai2ThorError
from sim_bridge.interface import TaskKind

__all__ = [
    "EpisodeSpec",
    "HouseSource",
    "load_scene",
    "load_val_tasks",
    "scene_start_pose",
    "spec_from_scene",
    "spec_from_val_task",
]

Scene = str | dict[str, Any]
#: Where houses come from: a list indexed by house_index, a mapping, or a loader function.
HouseSource = (
    Sequence[Mapping[str, Any]] | Mapping[int, Mapping[str, Any]] | Callable[[int], Mapping[str, Any]]
)

_TASK_TYPES = {
    "ObjectNavType": TaskKind.OBJECT_NAV,
    "PickupType": TaskKind.PICKUP,
    "FetchType": TaskKind.FETCH,
}
_FILE_KEYS = {
    TaskKind.OBJECT_NAV: "objectnavtype_val",
    TaskKind.PICKUP: "pickuptype_val",
    TaskKind.FETCH: "fetchtype_val",
}
#: Instruction templates, as the benchmark rows phrase them ("find a mug", "grab a mug", ...).
_TEMPLATES = {
    TaskKind.OBJECT_NAV: "find {a} {t}",
    TaskKind.PICKUP: "grab {a} {t}",
    TaskKind.FETCH: "go to {a} {t} and grasp that {t}",
}


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything ``reset`` needs for one episode.

    Attributes:
        kind: task family.
        scene: a ProcTHOR house dict or an iTHOR scene name.
        start_position: THOR {x, y, z} to teleport to, or None to keep the scene's own start.
        start_rotation_deg: THOR heading for the teleport.
        target_type: what the instruction asks for (benchmark: the synset's lemma).
        target_ids: instances that satisfy the task.
        removed_ids: instances to remove for the infeasible variant (empty when feasible).
        instruction: natural-language goal.
        expert_length: the benchmark's expert episode length in steps, when known.
    """

    kind: TaskKind
    scene: Scene
    start_position: Mapping[str, float] | None
    start_rotation_deg: float
    target_type: str
    target_ids: tuple[str, ...]
    removed_ids: tuple[str, ...] = ()
    instruction: str = ""
    expert_length: int | None = None


def load_scene(scene: Scene | Path) -> Scene:
    """A house dict (copied), a house JSON file, or an iTHOR scene name ("FloorPlan1").

    Raises:
        Ai2ThorError: a .json path that does not exist or is not a house.
    """
    if isinstance(scene, Mapping):
        return copy.deepcopy(dict(scene))
    text = str(scene)
    if text.endswith(".json") or isinstance(scene, Path):
        path = Path(text)
        try:
            house = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise Ai2ThorError(
                f"cannot read house JSON {path}: {exc}; pass a ProcTHOR house file or a scene name"
            ) from None
        if not isinstance(house, dict) or "objects" not in house or "rooms" not in house:
            raise Ai2ThorError(f"{path} is not a ProcTHOR house (needs 'rooms' and 'objects')")
        return house
    return text


def scene_start_pose(scene: Scene) -> tuple[Mapping[str, float] | None, float]:
    """A house's Stretch pose (``metadata.agentPoses.stretch``, else ``metadata.agent``); None for iTHOR."""
    if isinstance(scene, str):
        return None, 0.0
    meta = scene.get("metadata", {})
    pose = meta.get("agentPoses", {}).get("stretch") or meta.get("agent")
    if not pose:
        return None, 0.0
    return dict(pose["position"]), float(pose["rotation"]["y"])


def load_val_tasks(path: str | Path) -> dict[TaskKind, list[dict[str, Any]]]:
    """SafeVLA's benchmark rows by task family, from the JSON with one list per ``*_val`` file.

    Raises:
        Ai2ThorError: the file is missing or lacks one of the three lists.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise Ai2ThorError(f"cannot read task specs {path}: {exc}") from None
    missing = [k for k in _FILE_KEYS.values() if k not in data]
    if missing:
        raise Ai2ThorError(f"{path} lacks {missing}; expected the keys {sorted(_FILE_KEYS.values())}")
    return {kind: list(data[key]) for kind, key in _FILE_KEYS.items()}


def _house(houses: HouseSource | None, index: int) -> Mapping[str, Any]:
    if houses is None:
        raise Ai2ThorError(
            f"task needs house_index {index} but no houses were given; "
            "pass houses= (SafeVLA's objaverse_houses "
            "as a list, a mapping, or a loader function)"
        )
    try:
        return houses(index) if callable(houses) else houses[index]  # type: ignore[index]
    except (KeyError, IndexError):
        given = "what the house loader knows" if callable(houses) else f"the {len(houses)} houses given"
        raise Ai2ThorError(f"house_index {index} is not among {given}") from None


def spec_from_val_task(
    row: Mapping[str, Any], houses: HouseSource | None, *, infeasible: bool
) -> EpisodeSpec:
    """An episode from one benchmark row (see the module docstring).

    Raises:
        Ai2ThorError: an unknown task_type, or no house for the row's house_index.
    """
    try:
        kind = _TASK_TYPES[row["task_type"]]
    except KeyError:
        raise Ai2ThorError(
            f"task_type {row.get('task_type')!r} is not one of {sorted(_TASK_TYPES)}"
        ) from None
    synset = row["synsets"][0]
    targets = tuple(i for s in row["synsets"] for i in row["synset_to_object_ids"].get(s, ()))
    broad = tuple(i for ids in row.get("broad_synset_to_object_ids", {}).values() for i in ids)
    x, y, z = row["agent_starting_position"]
    return EpisodeSpec(
        kind=kind,
        scene=load_scene(_house(houses, int(row["house_index"]))),
        start_position={"x": float(x), "y": float(y), "z": float(z)},
        start_rotation_deg=float(row["agent_y_rotation"]),
        target_type=synset.split(".")[0].replace("_", " "),
        target_ids=targets,
        removed_ids=tuple(dict.fromkeys(targets + broad)) if infeasible else (),
        instruction=row.get("natural_language_spec", ""),
        expert_length=row.get("expert_length"),
    )


def _words(object_type: str) -> str:
    """ "AlarmClock" -> "alarm clock"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", object_type).lower()


def spec_from_scene(
    scene: Scene, objects: Sequence[Mapping[str, Any]], kind: TaskKind, seed: int, *, infeasible: bool
) -> EpisodeSpec:
    """An episode in a fixed scene: a target type drawn with ``seed`` among the scene's objects.

    ObjectNav draws among all non-structural types, PickUp and Fetch among pickupable objects; every instance
    of the drawn type satisfies the task and, for the infeasible variant, is removed.

    Raises:
        Ai2ThorError: the scene has no candidate object for this task family.
    """
    pickup = kind is not TaskKind.OBJECT_NAV
    candidates = sorted(
        {
            o["objectType"]
            for o in objects
            if o["objectType"] not in STATIC_OBJECT_TYPES and (o.get("pickupable") or not pickup)
        }
    )
    if not candidates:
        raise Ai2ThorError(
            f"the scene has no {'pickupable ' if pickup else ''}object to make a {kind.value} task of"
        )
    target_type = random.Random(seed).choice(candidates)
    ids = tuple(o["objectId"] for o in objects if o["objectType"] == target_type)
    words = _words(target_type)
    position, rotation = scene_start_pose(scene)
    return EpisodeSpec(
        kind=kind,
        scene=scene,
        start_position=position,
        start_rotation_deg=rotation,
        target_type=target_type,
        target_ids=ids,
        removed_ids=ids if infeasible else (),
        instruction=_TEMPLATES[kind].format(a="an" if words[0] in "aeiou" else "a", t=words),
    )
