"""Configuration of the AI2-THOR backend: the controller exactly as SafeVLA starts it, plus our read-outs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safevla_node.config import check_range, field
from sim_bridge.ai2thor.constants import (
    INTEL_VERTICAL_FOV,
    MAXIMUM_DISTANCE_ARM_FROM_AGENT_CENTER,
    NAV_CAMERA_MOUNT_DEG,
    STRETCH_COMMIT_ID,
)

__all__ = ["Ai2ThorConfig"]


@dataclass(frozen=True)
class Ai2ThorConfig:
    """Controller arguments (SafeVLA's ``STRETCH_ENV_ARGS``) and how the backend reads the simulator."""

    width: int = field(396, "camera width (px) before SafeVLA's 6/396 side crop")
    height: int = field(224, "camera height (px)")
    field_of_view: float = field(INTEL_VERTICAL_FOV, "vertical field of view of the cameras (deg)")
    grid_size: float = field(0.15, "grid of GetReachablePositions (m); SafeVLA: 0.75 x the 0.2 m move step")
    visibility_distance: float = field(
        MAXIMUM_DISTANCE_ARM_FROM_AGENT_CENTER, "objects farther are never 'visible' (m)"
    )
    render_depth: bool = field(False, "render depth frames (needed for the synthetic laser scan)")
    headless: bool = field(True, "render off-screen with platform=CloudRendering (no X server)")
    local_executable_path: str = field(
        "", "path to a downloaded Unity build; empty: ai2thor fetches commit_id"
    )
    commit_id: str = field(STRETCH_COMMIT_ID, "AI2-THOR build SafeVLA was trained on")
    server_timeout: float = field(1200.0, "seconds to wait for Unity (SafeVLA raised it for CloudRendering)")
    gpu_device: int = field(-1, "CloudRendering GPU index; -1 lets ai2thor choose")
    quick_navigation: bool = field(
        True, "base actions as MoveAheadQuick/RotateRightQuick (SafeVLA's default)"
    )
    seen_max_distance: float = field(4.0, "GetVisibleObjects range for the blind-spot seen set (m)")
    success_distance: float = field(2.0, "ObjectNav success: target visible within this range at 'end' (m)")
    scan_rows: int = field(5, "depth rows averaged into the synthetic scan")
    nav_camera_pitch_deg: float = field(
        NAV_CAMERA_MOUNT_DEG, "nav camera tilt (deg, down positive) for the scan"
    )
    range_max: float = field(10.0, "synthetic scan maximum range (m); farther returns are inf")
    discrete_action_period_s: float = field(
        1.0, "simulated time one discrete action takes, for time stamps (s)"
    )

    def __post_init__(self) -> None:
        check_range("width", self.width, 16, 4096)
        check_range("height", self.height, 16, 4096)
        check_range("field_of_view", self.field_of_view, 1.0, 179.0)
        check_range("grid_size", self.grid_size, 0.01, 1.0)
        check_range("visibility_distance", self.visibility_distance, 0.0, 100.0)
        check_range("seen_max_distance", self.seen_max_distance, 0.0, 100.0)
        check_range("success_distance", self.success_distance, 0.0, 100.0)
        check_range("scan_rows", self.scan_rows, 1, self.height)
        check_range(
            "nav_camera_pitch_deg", self.nav_camera_pitch_deg, -self.field_of_view / 2, self.field_of_view / 2
        )
        check_range("range_max", self.range_max, 0.1, 1000.0)
        check_range("discrete_action_period_s", self.discrete_action_period_s, 0.0, 60.0)
        check_range("server_timeout", self.server_timeout, 1.0, None)

    def controller_kwargs(self) -> dict[str, Any]:
        """``ai2thor.controller.Controller`` keyword arguments, matching SafeVLA's ``STRETCH_ENV_ARGS``.

        Omitted on purpose: ``server_class=FifoServer`` and ``action_hook_runner`` (Objaverse asset hook),
        which need ai2thor objects and SafeVLA's asset directory;
        ``render_mani_camera``/``use_quick_navi_action``, which SafeVLA's own wrapper consumes (here: the
        manipulation camera is always rendered and ``quick_navigation`` picks the base actions).
        ``platform`` is added by the backend.
        """
        kwargs: dict[str, Any] = {
            "agentMode": "stretch",
            "gridSize": self.grid_size,
            "width": self.width,
            "height": self.height,
            "visibilityDistance": self.visibility_distance,
            "visibilityScheme": "Distance",
            "fieldOfView": self.field_of_view,
            "useMassThreshold": False,
            "massThreshold": 1,
            "autoSimulation": False,
            "autoSyncTransforms": True,
            "renderInstanceSegmentation": True,
            "renderDepthImage": self.render_depth,
            "cameraNearPlane": 0.01,
            "server_timeout": self.server_timeout,
            "snapToGrid": False,
            "fastActionEmit": True,
        }
        if self.local_executable_path:
            kwargs["local_executable_path"] = self.local_executable_path
        else:
            kwargs["branch"] = None
            kwargs["commit_id"] = self.commit_id
        if self.gpu_device >= 0:
            kwargs["gpu_device"] = self.gpu_device
        return kwargs
