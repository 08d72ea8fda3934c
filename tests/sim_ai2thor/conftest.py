"""Fixtures of the AI2-THOR backend tests: real recordings (shared/data/ai2thor) and the contract double."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim_bridge.ai2thor import Ai2ThorBackend, Ai2ThorConfig
from tests.sim_ai2thor.thor_double import ThorControllerDouble

@pytest.fixture(scope="session")
def thor_data(shared_data: Path) -> Path:
    """shared/data/ai2thor: real AI2-THOR recordings (see its SOURCES.md)."""
    return shared_data / "ai2thor"


@pytest.fixture(scope="session")
def recording(thor_data: Path) -> Callable[[str], dict[str, Any]]:
    """Load a recorded episode (``_source``, ``controller_actions``, ``events``) by file stem."""
    cache: dict[str, dict[str, Any]] = {}

    def load(stem: str) -> dict[str, Any]:
        if stem not in cache:
            cache[stem] = json.loads((thor_data / f"{stem}.json").read_text())
        return cache[stem]

    return load


@pytest.fixture(scope="session")
def house(thor_data: Path) -> dict[str, Any]:
    return json.loads((thor_data / "procthor_train_1_house.json").read_text())


@pytest.fixture
def make_backend(thor_data: Path) -> Callable[..., tuple[Ai2ThorBackend, ThorControllerDouble]]:
    """Build a backend on a fresh double; returns both."""

    def make(*, recording: str | None = None, config: Ai2ThorConfig | None = None, **kwargs: Any):
        made: list[ThorControllerDouble] = []

        def factory(**controller_kwargs: Any) -> ThorControllerDouble:
            made.append(ThorControllerDouble(thor_data, recording=recording, **controller_kwargs))
            return made[0]

        backend = Ai2ThorBackend(
            config or Ai2ThorConfig(quick_navigation=False), controller_factory=factory, **kwargs
        )
        return backend, made[0]

    return make


@pytest.fixture
def sent() -> Callable[[ThorControllerDouble, int], list[dict[str, Any]]]:
    """Action dicts the double received from index ``start`` on, without the read-only queries."""

    def actions(double: ThorControllerDouble, start: int = 0) -> list[dict[str, Any]]:
        queries = {"GetVisibleObjects", "GetReachablePositions"}
        return [a for a in double.actions[start:] if a["action"] not in queries]

    return actions
