"""Simulators behind one interface (``interface.SimBackend``): embedded MuJoCo and AI2-THOR."""

from sim_bridge.interface import (
    JOINT_NAMES,
    CameraFrame,
    EpisodeStatus,
    LaserScanData,
    Observation,
    SimBackend,
    StepResult,
    TaskKind,
    TaskSpec,
)

__all__ = [
    "JOINT_NAMES",
    "CameraFrame",
    "EpisodeStatus",
    "LaserScanData",
    "Observation",
    "SimBackend",
    "StepResult",
    "TaskKind",
    "TaskSpec",
]
