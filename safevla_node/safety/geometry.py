"""Vectorised planar geometry for the predictive shield: poses, footprints, swept paths, distances, grouping.

Every function works on whole arrays (P sampled poses x N points) so that one shield decision is a handful
of numpy operations instead of a Python loop over points. Poses are (x, y, yaw) rows in odom (m, m, rad);
points are (x, y) rows. Clearances are signed: positive outside a body, negative inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Footprint",
    "SweptBody",
    "arm_segments",
    "bounding_circle",
    "box_outline_points",
    "link_groups",
    "point_box_distance",
    "points_in_boxes",
    "segment_distance",
    "unicycle_poses",
    "wrap_angle",
]


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Angle(s) wrapped into [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2.0 * math.pi) - math.pi


def unicycle_poses(start: tuple[float, float, float], v: float, w: float, taus: np.ndarray) -> np.ndarray:
    """Poses (P, 3) of a unicycle holding (v, w) from ``start`` for each time in ``taus``.

    Integrated exactly (circular arcs), so the sampled poses lie on the true path however coarse ``taus`` is.
    """
    x0, y0, yaw0 = start
    taus = np.asarray(taus, dtype=float)
    yaw = yaw0 + w * taus
    if abs(w) < 1e-9:
        x = x0 + v * taus * math.cos(yaw0)
        y = y0 + v * taus * math.sin(yaw0)
    else:
        r = v / w
        x = x0 + r * (np.sin(yaw) - math.sin(yaw0))
        y = y0 - r * (np.cos(yaw) - math.cos(yaw0))
    return np.stack([x, y, yaw], axis=1)


@dataclass(frozen=True)
class Footprint:
    """The base's outline in base_link: a circle, or a rectangle when ``length`` and ``width`` are positive.

    Attributes:
        radius: circle radius (m), used when the rectangle is not set.
        length: rectangle extent along x (m); 0 selects the circle.
        width: rectangle extent along y (m); 0 selects the circle.
        offset_x: rectangle centre ahead of base_link (m); Stretch's base_link sits on the drive axle, not
            at the centre of the base.
    """

    radius: float
    length: float = 0.0
    width: float = 0.0
    offset_x: float = 0.0

    @property
    def is_circle(self) -> bool:
        """True when the footprint is the circle."""
        return self.length <= 0.0 or self.width <= 0.0

    @property
    def extent(self) -> float:
        """The farthest distance of the outline from base_link (m), for bounding circles."""
        if self.is_circle:
            return self.radius
        return math.hypot(abs(self.offset_x) + self.length / 2.0, self.width / 2.0)

    def clearance(self, poses: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Signed distance (P, N) from the outline placed at each pose to each point (negative inside)."""
        dx = points[None, :, 0] - poses[:, 0:1]
        dy = points[None, :, 1] - poses[:, 1:2]
        if self.is_circle:
            return np.hypot(dx, dy) - self.radius
        c = np.cos(poses[:, 2:3])
        s = np.sin(poses[:, 2:3])
        lx = np.abs(dx * c + dy * s - self.offset_x) - self.length / 2.0
        ly = np.abs(dy * c - dx * s) - self.width / 2.0
        outside = np.hypot(np.maximum(lx, 0.0), np.maximum(ly, 0.0))
        return outside + np.minimum(np.maximum(lx, ly), 0.0)


def segment_distance(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance (P, N) from each point to each segment a[i] -> b[i] (a, b: (P, 2); points: (N, 2))."""
    ux = (b[:, 0] - a[:, 0])[:, None]
    uy = (b[:, 1] - a[:, 1])[:, None]
    dx = points[None, :, 0] - a[:, 0:1]
    dy = points[None, :, 1] - a[:, 1:2]
    length2 = ux * ux + uy * uy
    t = np.clip((dx * ux + dy * uy) / np.where(length2 > 0.0, length2, 1.0), 0.0, 1.0)
    return np.hypot(dx - t * ux, dy - t * uy)


def arm_segments(
    poses: np.ndarray,
    mast_xy: tuple[float, float],
    arm_length: np.ndarray | float,
    wrist_yaw: np.ndarray | float,
    gripper_length: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward kinematics of a Stretch-like side arm, projected on the floor.

    The telescoping arm leaves the mast (``mast_xy`` in base_link) along -y of base_link for ``arm_length``
    (retracted length plus extension); the gripper continues from the wrist for ``gripper_length`` along
    the arm direction turned by ``wrist_yaw`` (0 = straight out, counter-clockwise positive).

    Returns:
        (mast, wrist, tip): (P, 2) odom points; the arm is mast -> wrist, the gripper wrist -> tip.
    """
    x, y, yaw = poses[:, 0], poses[:, 1], poses[:, 2]
    c, s = np.cos(yaw), np.sin(yaw)
    mx, my = mast_xy
    mast = np.empty((len(poses), 2))
    mast[:, 0] = x + c * mx - s * my
    mast[:, 1] = y + s * mx + c * my
    wrist = mast.copy()
    wrist[:, 0] += arm_length * s  # the arm direction yaw - pi/2 is (sin yaw, -cos yaw)
    wrist[:, 1] -= arm_length * c
    grip_dir = yaw - math.pi / 2.0 + wrist_yaw
    tip = wrist.copy()
    tip[:, 0] += gripper_length * np.cos(grip_dir)
    tip[:, 1] += gripper_length * np.sin(grip_dir)
    return mast, wrist, tip


class SweptBody:
    """A robot (footprint plus arm and gripper capsules) sampled at P configurations along a predicted motion.

    Each part gets its own bounding circle so that a point far from the arm is never measured against it:
    most of the cost of a decision is distances, and most points are near at most one part.
    """

    def __init__(
        self,
        poses: np.ndarray,
        footprint: Footprint | None,
        mast_xy: tuple[float, float],
        arm_length: np.ndarray | float,
        wrist_yaw: np.ndarray | float,
        gripper_length: float,
        arm_radius: float,
        gripper_radius: float,
    ) -> None:
        """``footprint`` None leaves the base out (an arm motion with the base standing still)."""
        self.poses = poses
        self.footprint = footprint
        mast, wrist, tip = arm_segments(poses, mast_xy, arm_length, wrist_yaw, gripper_length)
        #: (wrist, tip): the gripper's ends at each configuration, (P, 2) each.
        self.gripper = (wrist, tip)
        # arm (mast -> wrist) and gripper (wrist -> tip) stacked into one batch of 2P capsules
        self._seg_a = np.concatenate([mast, wrist])
        self._seg_b = np.concatenate([wrist, tip])
        self._seg_radius = np.repeat([arm_radius, gripper_radius], len(poses))[:, None]
        self._fp_center, fp_radius = bounding_circle(poses[:, :2])
        self._fp_radius = fp_radius + (footprint.extent if footprint is not None else 0.0)
        self._arm_center, arm_radius_bound = bounding_circle(np.concatenate([mast, wrist, tip]))
        self._arm_radius = arm_radius_bound + max(arm_radius, gripper_radius)

    def near(self, pts: np.ndarray, fp_pad: float, arm_pad: float) -> tuple[np.ndarray, np.ndarray]:
        """(N,) masks: points within ``fp_pad`` of the footprint's / ``arm_pad`` of the arm's circle."""
        if self.footprint is None:
            in_fp = np.zeros(len(pts), dtype=bool)
        else:
            in_fp = np.sum((pts - self._fp_center) ** 2, axis=1) <= (self._fp_radius + fp_pad) ** 2
        in_arm = np.sum((pts - self._arm_center) ** 2, axis=1) <= (self._arm_radius + arm_pad) ** 2
        return in_fp, in_arm

    def clearance(
        self, pts: np.ndarray, fp_cols: np.ndarray, arm_cols: np.ndarray, arm_gap: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(footprint clearance, whole-body clearance), each (P, N), computing the footprint only for the
        ``fp_cols`` points and the arm only for the ``arm_cols`` points; inf where a part was skipped.

        ``arm_gap`` (P, N), where given: the vertical gap (m, >= 0) between the arm's height band and the
        object each point belongs to. The arm and an object are both upright prisms, so their distance is the
        planar one and the vertical one in quadrature: an arm passing over a low object is that much farther."""
        p = len(self.poses)
        fp = np.full((p, len(pts)), np.inf)
        if self.footprint is not None and fp_cols.any():
            fp[:, fp_cols] = self.footprint.clearance(self.poses, pts[fp_cols])
        body = fp.copy()
        if arm_cols.any():
            capsules = segment_distance(self._seg_a, self._seg_b, pts[arm_cols]) - self._seg_radius
            arm = np.minimum(capsules[:p], capsules[p:])
            if arm_gap is not None:
                gap = arm_gap[:, arm_cols]
                arm = np.where(gap > 0.0, np.hypot(np.maximum(arm, 0.0), gap), arm)
            body[:, arm_cols] = np.minimum(body[:, arm_cols], arm)
        return fp, body


def bounding_circle(points: np.ndarray) -> tuple[np.ndarray, float]:
    """A circle (centre, radius) enclosing ``points`` (K, 2): the box centre, not the minimal circle."""
    center = (points.min(axis=0) + points.max(axis=0)) / 2.0
    return center, float(np.sqrt(np.max(np.sum((points - center) ** 2, axis=1))))


def box_outline_points(
    centers: np.ndarray, sizes: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the outlines of axis-aligned boxes (floor projection), at most ``spacing`` apart.

    Distances to the outline then err by at most spacing / 2, which the caller subtracts to stay
    conservative. The centre is added so a body wholly inside a large box still sees a point.

    Returns:
        (points (K, 2), owner (K,)): the points and the index of the box each belongs to.
    """
    chunks: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for i, ((cx, cy), (sx, sy)) in enumerate(zip(centers, sizes)):
        hx, hy = max(sx, 0.0) / 2.0, max(sy, 0.0) / 2.0
        xs = np.linspace(cx - hx, cx + hx, max(2, math.ceil(2 * hx / spacing) + 1))
        ys = np.linspace(cy - hy, cy + hy, max(2, math.ceil(2 * hy / spacing) + 1))[1:-1]
        pts = np.concatenate(
            [
                np.stack([xs, np.full_like(xs, cy - hy)], axis=1),
                np.stack([xs, np.full_like(xs, cy + hy)], axis=1),
                np.stack([np.full_like(ys, cx - hx), ys], axis=1),
                np.stack([np.full_like(ys, cx + hx), ys], axis=1),
                [[cx, cy]],
            ]
        )
        chunks.append(pts)
        owners.append(np.full(len(pts), i, dtype=np.intp))
    if not chunks:
        return np.zeros((0, 2)), np.zeros((0,), dtype=np.intp)
    return np.concatenate(chunks), np.concatenate(owners)


def points_in_boxes(
    points: np.ndarray, centers: np.ndarray, sizes: np.ndarray, pad: float = 0.0
) -> np.ndarray:
    """(N, M) True where point n lies inside the floor projection of box m grown by ``pad``."""
    half = sizes[None, :, :2] / 2.0 + pad
    return np.all(np.abs(points[:, None, :2] - centers[None, :, :2]) <= half, axis=2)


def point_box_distance(points: np.ndarray, centers: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Euclidean distance (..., M) from points (..., D) to each of M axis-aligned boxes (0 inside), D = 2 or 3."""
    gap = np.maximum(np.abs(np.asarray(points)[..., None, :] - centers) - sizes / 2.0, 0.0)
    return np.sqrt(np.sum(gap * gap, axis=-1))


def link_groups(points: np.ndarray, max_dist: float) -> list[np.ndarray]:
    """Connected components of points linked transitively when closer than ``max_dist`` (any dimension).

    The Safety-CHORES fragile-collection rule: objects chain into one group through neighbours, so a row
    of cups 0.25 m apart is one group even if its ends are a metre apart.

    Returns:
        One sorted index array per group (singletons included), ordered by their smallest index.
    """
    n = len(points)
    if n == 0:
        return []
    pts = np.asarray(points, dtype=float)
    diff = pts[:, None, :] - pts[None, :, :]
    adjacent = np.einsum("ijk,ijk->ij", diff, diff) < max_dist * max_dist
    label = np.full(n, -1, dtype=np.intp)
    groups: list[np.ndarray] = []
    for seed in range(n):
        if label[seed] >= 0:
            continue
        label[seed] = len(groups)
        frontier = np.array([seed])
        while frontier.size:
            reached = np.flatnonzero(adjacent[frontier].any(axis=0) & (label < 0))
            label[reached] = len(groups)
            frontier = reached
        groups.append(np.flatnonzero(label == len(groups)))
    return groups
