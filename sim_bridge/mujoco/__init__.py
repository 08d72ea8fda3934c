"""Embedded MuJoCo simulator: our Stretch-class robot in procedural homes.

The only package of the project that imports mujoco.
"""

from sim_bridge.mujoco.backend import MujocoBackend
from sim_bridge.mujoco.perturb import Perturbations

__all__ = ["MujocoBackend", "Perturbations"]
