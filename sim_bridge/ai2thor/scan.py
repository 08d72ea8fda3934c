"""A planar laser scan synthesised from the navigation camera's depth frame.

AI2-THOR's Stretch has no lidar, but the shield and the bridge expect one, so the backend derives it from
depth. The depth frame holds planar depth (metres along the optical axis). The camera is tilted down by its
mount (SafeVLA sets 27 deg), so the band of rows used is centred on the row whose rays are horizontal
(the image centre row for a level camera), ``rows`` high. Each pixel of the band is projected into the level
base frame; per image column the nearest planar range is kept (conservative), and the columns are resampled
onto beams with a uniform angle increment, counter-clockwise from the rightmost column (REP-103 / LaserScan).

Limits: the scan only covers the camera's horizontal field of view (about 90 deg for 384x224 at 59 deg
vertical), sees obstacles only at the camera's height band, and is empty when no depth is rendered.
"""

from __future__ import annotations

import math

import numpy as np

from sim_bridge.interface import LaserScanData

__all__ = ["depth_to_scan", "empty_scan"]


def empty_scan(range_min: float, range_max: float) -> LaserScanData:
    """A scan with no beams: nothing was measured (never 'free space')."""
    return LaserScanData(0.0, 0.0, range_min, range_max, np.zeros(0, dtype=np.float32))


def depth_to_scan(
    depth: np.ndarray,
    vertical_fov_deg: float,
    pitch_down_deg: float,
    rows: int,
    range_min: float,
    range_max: float,
) -> LaserScanData:
    """Project a band of depth rows onto the floor plane (see the module docstring).

    Raises:
        ValueError: depth is not a non-empty 2-D array, or the horizontal row falls outside the image.
    """
    if depth.ndim != 2 or depth.size == 0:
        raise ValueError(f"depth must be a non-empty (H, W) array, got shape {depth.shape}")
    h, w = depth.shape
    fy = (h / 2.0) / math.tan(math.radians(vertical_fov_deg) / 2.0)
    fx = fy
    cx, cy = w / 2.0, h / 2.0
    pitch = math.radians(pitch_down_deg)
    row_level = cy - fy * math.tan(pitch) - 0.5
    first = int(round(row_level - (rows - 1) / 2.0))
    if first < 0 or first + rows > h:
        raise ValueError(
            f"the horizontal row {row_level:.1f} (pitch {pitch_down_deg} deg) is outside the {h}-row image"
        )
    band = depth[first : first + rows].astype(np.float64)
    v = np.arange(first, first + rows, dtype=np.float64)[:, None] + 0.5
    u = np.arange(w, dtype=np.float64)[None, :] + 0.5
    x_right = band * (u - cx) / fx
    y_up = band * (cy - v) / fy
    forward = band * math.cos(pitch) + y_up * math.sin(pitch)
    planar = np.hypot(forward, x_right)
    planar[~np.isfinite(band) | (band <= 0.0)] = np.nan
    with np.errstate(all="ignore"):
        per_column = np.nanmin(np.where(np.isnan(planar), np.inf, planar), axis=0)
    bearing = np.arctan2(-(u[0] - cx) / fx, 1.0 / math.cos(pitch))  # left positive; decreasing with u
    order = np.argsort(bearing)
    bearing, per_column = bearing[order], per_column[order]
    beams = np.linspace(bearing[0], bearing[-1], w)
    nearest = np.clip(np.searchsorted(bearing, beams), 0, w - 1)
    left_closer = (nearest > 0) & (
        np.abs(bearing[np.maximum(nearest - 1, 0)] - beams) < np.abs(bearing[nearest] - beams)
    )
    nearest = np.where(left_closer, nearest - 1, nearest)
    ranges = per_column[nearest]
    ranges = np.where(ranges > range_max, np.inf, ranges)  # LaserScanData stores float32
    increment = float(beams[1] - beams[0]) if w > 1 else 0.0
    return LaserScanData(float(beams[0]), increment, range_min, range_max, ranges)
