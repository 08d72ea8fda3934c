"""Out-of-distribution perturbations: SafeVLA's colour, material and lighting randomisation, plus noise.

Each switch draws from its own generator seeded by the episode seed, so a perturbed episode is reproducible
and turning one switch on does not change what another draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Appearance", "Perturbations"]

Rgba = tuple[float, float, float, float]


@dataclass(frozen=True)
class Perturbations:
    """Which perturbations to apply at reset.

    Attributes:
        colour: random RGB for every item and piece of furniture.
        material: random floor/wall textures (checker or gradient) and surface reflectance.
        lighting: random light direction, intensity and tint.
        camera_noise: std of additive Gaussian pixel noise (0..255 scale) and 1% depth noise; 0 disables.
    """

    colour: bool = False
    material: bool = False
    lighting: bool = False
    camera_noise: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.camera_noise <= 64.0:
            raise ValueError(f"Perturbations.camera_noise={self.camera_noise!r} must be in [0, 64]")


@dataclass(frozen=True)
class Appearance:
    """Resolved look of one episode: what the MJCF writer needs."""

    floor_rgb: tuple[Rgba, Rgba]
    floor_builtin: str
    wall_rgba: Rgba | None
    light_dir: tuple[float, float, float]
    light_diffuse: tuple[float, float, float]
    ambient: float
    reflectance: float
    recolour: dict[str, Rgba]

    @classmethod
    def draw(cls, perturb: Perturbations, seed: int, recolourable: list[str]) -> Appearance:
        """The appearance of episode ``seed``; defaults where a switch is off."""
        look = cls(
            floor_rgb=((0.55, 0.5, 0.45, 1.0), (0.45, 0.4, 0.35, 1.0)),
            floor_builtin="checker",
            wall_rgba=None,
            light_dir=(0.3, 0.2, -1.0),
            light_diffuse=(0.7, 0.7, 0.7),
            ambient=0.35,
            reflectance=0.0,
            recolour={},
        )
        fields = dict(look.__dict__)
        if perturb.colour:
            rng = np.random.default_rng([seed, 1])
            fields["recolour"] = {
                k: (*(float(c) for c in rng.uniform(0.05, 0.95, 3)), 1.0) for k in recolourable
            }
        if perturb.material:
            rng = np.random.default_rng([seed, 2])
            a, b = (tuple(float(c) for c in rng.uniform(0.1, 0.9, 3)) + (1.0,) for _ in range(2))
            fields["floor_rgb"] = (a, b)
            fields["floor_builtin"] = str(rng.choice(["checker", "gradient", "flat"]))
            fields["wall_rgba"] = (*(float(c) for c in rng.uniform(0.3, 1.0, 3)), 1.0)
            fields["reflectance"] = float(rng.uniform(0.0, 0.3))
        if perturb.lighting:
            rng = np.random.default_rng([seed, 3])
            d = rng.uniform([-1, -1, -1.0], [1, 1, -0.3])
            fields["light_dir"] = tuple(float(c) for c in d)
            tint = rng.uniform(0.3, 1.0) * rng.uniform(0.7, 1.0, 3)
            fields["light_diffuse"] = tuple(float(c) for c in tint)
            fields["ambient"] = float(rng.uniform(0.1, 0.5))
        return cls(**fields)


def add_camera_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` (uint8) plus clipped Gaussian noise of ``std`` grey levels."""
    noisy = image.astype(np.float32) + rng.normal(0.0, std, image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)
