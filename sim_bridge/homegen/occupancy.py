"""Floor occupancy of a scene: which grid cells a round robot of a given radius can stand on.

Used for the corner predicate's reachable points (AI2-THOR ``GetReachablePositions``: 0.15 m grid, flood fill
from the robot) and for the expert's shortest paths. Static geometry only, as AI2-THOR's reachability.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from sim_bridge.homegen.scene import Scene

__all__ = ["OccupancyGrid"]

_NEIGHBOURS = tuple((di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0))


@dataclass(frozen=True)
class OccupancyGrid:
    """Free cells of a regular grid over the scene; cell (i, j) has its centre at origin + res * (i, j)."""

    origin: tuple[float, float]
    res: float
    free: np.ndarray

    @classmethod
    def from_scene(cls, scene: Scene, res: float, radius: float) -> OccupancyGrid:
        """Cells whose centre is farther than ``radius`` from every wall and piece of furniture."""
        xmin, ymin, xmax, ymax = scene.bounds()
        xs = np.arange(math.floor(xmin / res), math.ceil(xmax / res) + 1) * res
        ys = np.arange(math.floor(ymin / res), math.ceil(ymax / res) + 1) * res
        px, py = np.meshgrid(xs, ys, indexing="ij")
        free = np.ones(px.shape, dtype=bool)
        for box in scene.statics:
            x0, y0, x1, y1 = box.footprint()
            dx = np.maximum(np.maximum(x0 - px, px - x1), 0.0)
            dy = np.maximum(np.maximum(y0 - py, py - y1), 0.0)
            free &= dx * dx + dy * dy > radius * radius
        return cls((float(xs[0]), float(ys[0])), res, free)

    def cell(self, x: float, y: float) -> tuple[int, int]:
        """The cell containing (x, y), clipped to the grid."""
        i = int(round((x - self.origin[0]) / self.res))
        j = int(round((y - self.origin[1]) / self.res))
        return (min(max(i, 0), self.free.shape[0] - 1), min(max(j, 0), self.free.shape[1] - 1))

    def center(self, i: int, j: int) -> tuple[float, float]:
        """Centre of cell (i, j) in m."""
        return (self.origin[0] + i * self.res, self.origin[1] + j * self.res)

    def points(self, mask: np.ndarray) -> np.ndarray:
        """(N, 2) centres of the cells set in ``mask``."""
        ii, jj = np.nonzero(mask)
        return np.stack([self.origin[0] + ii * self.res, self.origin[1] + jj * self.res], axis=1)

    def nearest_free(self, x: float, y: float) -> tuple[int, int] | None:
        """The free cell closest to (x, y), or None if the grid has none."""
        pts = self.points(self.free)
        if len(pts) == 0:
            return None
        k = int(np.argmin(np.hypot(pts[:, 0] - x, pts[:, 1] - y)))
        return self.cell(float(pts[k, 0]), float(pts[k, 1]))

    def reachable_from(self, x: float, y: float) -> np.ndarray:
        """Mask of free cells connected (8-neighbourhood) to the free cell nearest (x, y)."""
        mask = np.zeros_like(self.free)
        start = self.nearest_free(x, y)
        if start is None:
            return mask
        mask[start] = True
        queue = deque([start])
        nx, ny = self.free.shape
        while queue:
            i, j = queue.popleft()
            for di, dj in _NEIGHBOURS:
                a, b = i + di, j + dj
                if 0 <= a < nx and 0 <= b < ny and self.free[a, b] and not mask[a, b]:
                    mask[a, b] = True
                    queue.append((a, b))
        return mask

    def distance_field(self, goal: np.ndarray, enter_cost: np.ndarray | None = None) -> np.ndarray:
        """Cheapest 8-connected path (m) from each free cell to the nearest ``goal`` cell (or inf): path length,
        plus ``enter_cost`` (per cell, m) of every cell entered on the way when given (the goal cell's
        included, the start's not), so a plan can prefer to keep clear of penalised cells."""
        dist = np.full(self.free.shape, np.inf)
        heap: list[tuple[float, int, int]] = []
        for i, j in zip(*np.nonzero(goal & self.free)):
            dist[i, j] = 0.0
            heap.append((0.0, int(i), int(j)))
        heapq.heapify(heap)
        nx, ny = self.free.shape
        diag = self.res * math.sqrt(2.0)
        while heap:
            d, i, j = heapq.heappop(heap)
            if d > dist[i, j]:
                continue
            if enter_cost is not None:
                d += float(enter_cost[i, j])  # a neighbour's path enters (i, j)
            for di, dj in _NEIGHBOURS:
                a, b = i + di, j + dj
                if 0 <= a < nx and 0 <= b < ny and self.free[a, b]:
                    nd = d + (diag if di and dj else self.res)
                    if nd < dist[a, b]:
                        dist[a, b] = nd
                        heapq.heappush(heap, (nd, a, b))
        return dist
