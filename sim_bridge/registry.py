"""Simulator backends by name, imported only when asked for (MuJoCo and AI2-THOR pull heavy dependencies)."""

from __future__ import annotations

import importlib
from typing import Any

from sim_bridge.interface import SimBackend

__all__ = ["BACKENDS", "backend_class", "make_backend"]

#: Registry name -> "module:Class".
BACKENDS: dict[str, str] = {
    "mujoco": "sim_bridge.mujoco.backend:MujocoBackend",
    "ai2thor": "sim_bridge.ai2thor.backend:Ai2ThorBackend",
}


def backend_class(name: str) -> type[SimBackend]:
    """The class registered as ``name``.

    Raises:
        KeyError: unknown name (the message lists the valid ones).
        ImportError: the backend's module or one of its dependencies is not installed.
    """
    try:
        target = BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown simulator backend {name!r}; valid names: {sorted(BACKENDS)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, **kwargs: Any) -> SimBackend:
    """Construct the backend registered as ``name`` with ``kwargs``.

    Raises:
        KeyError: unknown name (the message lists the valid ones).
        ImportError: the backend's module or one of its dependencies is not installed.
    """
    return backend_class(name)(**kwargs)
