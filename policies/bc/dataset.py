"""Behaviour-cloning episodes on disk: one compressed ``.npz`` shard per episode, written atomically.

A shard holds, per step t of one expert episode (uint8 images, small ints):

    nav_rgb, manip_rgb   (T, H, W, 3) uint8   both cameras as the policy saw them before acting
    prev_action          (T,) int16           the action executed at t-1 (the start token 20 at t = 0)
    object_in_hand       (T,) uint8           1 while the gripper holds something
    expert_action        (T,) int16           the label: the expert's choice at t
    executed_action      (T,) int16           what ran (differs from the label on noise steps)
    meta                 JSON string          task, seed, instruction, difficulty, camera, noise, outcome

One file per episode makes collection resumable (a finished episode is a file; a killed one leaves only a
``.tmp`` that is ignored and overwritten) and lets workers write without coordination.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from safevla_node.errors import ConfigError

__all__ = ["Episode", "episode_name", "list_shards", "read_episode", "write_episode"]

SHARD_SUFFIX = ".npz"
_ARRAYS = ("nav_rgb", "manip_rgb", "prev_action", "object_in_hand", "expert_action", "executed_action")


@dataclass(frozen=True)
class Episode:
    """One recorded episode (see the module docstring for the array shapes; images None when not read)."""

    nav_rgb: np.ndarray | None
    manip_rgb: np.ndarray | None
    prev_action: np.ndarray
    object_in_hand: np.ndarray
    expert_action: np.ndarray
    executed_action: np.ndarray
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        steps = len(self.expert_action)
        for name in _ARRAYS:
            if getattr(self, name) is not None and len(getattr(self, name)) != steps:
                raise ValueError(f"Episode.{name} has {len(getattr(self, name))} steps, expected {steps}")
        if steps == 0:
            raise ValueError("an Episode needs at least one step")

    @property
    def steps(self) -> int:
        """Number of recorded steps."""
        return len(self.expert_action)

    @property
    def instruction(self) -> str:
        """The task's goal text."""
        return str(self.meta["instruction"])


def episode_name(task: str, seed: int) -> str:
    """Shard file name of an episode: ``<task>-<seed:06d>.npz``."""
    return f"{task}-{seed:06d}{SHARD_SUFFIX}"


def write_episode(directory: str | Path, name: str, episode: Episode) -> Path:
    """Write ``episode`` as ``directory/name`` (temporary file, then an atomic rename); returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = final.with_name(final.name + ".tmp")
    if episode.nav_rgb is None or episode.manip_rgb is None:
        raise ValueError(f"cannot write {name}: the episode was read without its images")
    arrays = {k: getattr(episode, k) for k in _ARRAYS}
    with tmp.open("wb") as handle:
        np.savez_compressed(handle, meta=np.array(json.dumps(episode.meta, sort_keys=True)), **arrays)
    os.replace(tmp, final)
    return final


def read_episode(path: str | Path, images: bool = True) -> Episode:
    """Load one shard; ``images=False`` skips decompressing the camera frames (they stay None).

    Raises:
        ConfigError: the file is missing, truncated or lacks an array (naming the file).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] if images or not k.endswith("_rgb") else None for k in _ARRAYS}
            meta = json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read BC episode {path}: {exc}; delete it and rerun collect to redo it"
                          ) from None
    return Episode(meta=meta, **arrays)


def list_shards(directory: str | Path) -> list[Path]:
    """Finished shards of a dataset folder, sorted by name.

    Raises:
        ConfigError: the folder does not exist or holds no shard.
    """
    directory = Path(directory)
    shards = sorted(directory.glob(f"*{SHARD_SUFFIX}")) if directory.is_dir() else []
    if not shards:
        raise ConfigError(f"no BC episodes (*{SHARD_SUFFIX}) in {directory}; run "
                          f"`python -m policies.bc collect --out {directory}` first")
    return shards
