"""Embedded MuJoCo simulator: our Stretch-class robot in procedural homes.

The only package of the project that imports mujoco.
"""

import os

# Offscreen rendering backend, fixed before anything imports mujoco: EGL (Mesa, or a GPU's driver) unless the
# caller chose (``MUJOCO_GL=osmesa`` works too, with Debian's libosmesa6).
os.environ.setdefault("MUJOCO_GL", "egl")

from sim_bridge.mujoco.backend import MujocoBackend  # noqa: E402
from sim_bridge.mujoco.perturb import Perturbations  # noqa: E402

__all__ = ["MujocoBackend", "Perturbations"]
