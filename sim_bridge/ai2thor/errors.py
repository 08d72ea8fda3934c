"""Errors of the AI2-THOR backend; each says what to do."""

from __future__ import annotations

from safevla_node.errors import SafeVLAError

__all__ = ["Ai2ThorError", "Ai2ThorUnavailableError"]

INSTALL_HINT = (
    "install the optional dependency with `pip install safevla_node[ai2thor]` (pins the ai2thor package), "
    "and either let ai2thor download its Unity build once on a machine with network access or pass "
    "Ai2ThorConfig(local_executable_path='/path/to/thor-Linux64-<commit>/thor-Linux64-<commit>')"
)


class Ai2ThorError(SafeVLAError):
    """The backend was used out of order or given a scene/task it cannot load."""


class Ai2ThorUnavailableError(Ai2ThorError, RuntimeError):
    """The ai2thor package or its Unity build is missing or would not start."""
