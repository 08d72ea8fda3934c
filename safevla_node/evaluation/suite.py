"""Benchmark suite definitions: YAML -> validated config -> a deterministic list of episode specs.

A suite names its policies once and then lists *blocks*, each a product of tasks x difficulties x
perturbations x policies x shield settings x seeds; a block's ``infeasible_fraction`` turns the last share of
its seeds into extreme-failure episodes (target absent), and a block with ``infeasible_fraction: 1`` is an
explicit infeasible cell. Every episode gets a stable, readable key; an episode that two blocks both
produce (e.g. the unperturbed cell of the main table and of the OOD table) is run once.

Seeds are shared across policies and shield settings, so shield off/on and policy comparisons are paired
on the same scenes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from safevla_node.config import check_range, field, from_mapping, load_yaml, to_mapping
from safevla_node.errors import ConfigError
from safevla_node.evaluation.planning_margins import PlanningMargins
from safevla_node.paths import config_path
from safevla_node.safety.shield import ShieldConfig
from sim_bridge.interface import TaskKind

__all__ = [
    "DIFFICULTIES",
    "PERTURBATIONS",
    "BlockConfig",
    "EpisodeSpec",
    "PolicySpec",
    "SuiteConfig",
    "expand",
    "load_suite",
    "robot_shield_section",
]

Difficulty = Literal["easy", "medium", "hard"]
Perturbation = Literal["none", "colour", "light", "material", "all"]
PolicyKind = Literal["expert", "noisy_expert", "checkpoint"]
Decoding = Literal["greedy", "sample"]

DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")
PERTURBATIONS: tuple[str, ...] = ("none", "colour", "light", "material", "all")


@dataclass(frozen=True)
class PolicySpec:
    """One policy under evaluation."""

    name: str = field("", "label used in keys, tables and plots (letters, digits, '_' and '-')")
    kind: PolicyKind = field("expert", "expert (privileged planner), noisy_expert, or checkpoint")
    noise: float = field(0.0, "noisy_expert: probability of a random (non-ending) action at each step")
    checkpoint: str = field("", "checkpoint: a path (our directory, .pt or .ckpt) or 'shipped'")
    device: str = field("cpu", "checkpoint: torch device ('cpu', 'cuda', 'auto')")
    decoding: Decoding = field(
        "greedy", "checkpoint: greedy (the most probable action) or sample (drawn from the policy's "
        "distribution, the generator seeded with the episode's seed: a PPO policy is trained stochastic, "
        "and its greedy action can hide what it learned)")

    def __post_init__(self) -> None:
        if not self.name or not all(ch.isalnum() or ch in "_-" for ch in self.name):
            raise ConfigError(f"policy name {self.name!r} must be non-empty letters, digits, '_' or '-'")
        check_range(f"policies[{self.name}].noise", self.noise, 0.0, 1.0)
        if self.kind == "noisy_expert" and self.noise == 0.0:
            raise ConfigError(f"policy {self.name!r}: a noisy_expert needs noise > 0 (else use kind: expert)")
        if self.kind != "noisy_expert" and self.noise != 0.0:
            raise ConfigError(f"policy {self.name!r}: noise={self.noise!r} applies only to kind noisy_expert")
        if (self.kind == "checkpoint") != bool(self.checkpoint):
            raise ConfigError(
                f"policy {self.name!r}: kind {self.kind!r} with checkpoint={self.checkpoint!r}; a checkpoint "
                "policy needs a path or 'shipped', the experts take none"
            )
        if self.decoding != "greedy" and self.kind != "checkpoint":
            raise ConfigError(f"policy {self.name!r}: decoding={self.decoding!r} applies only to kind checkpoint "
                              "(the experts plan)")

    @property
    def needs_images(self) -> bool:
        """The policy reads camera frames (the experts plan on privileged state)."""
        return self.kind == "checkpoint"


@dataclass(frozen=True)
class BlockConfig:
    """One product of cells (see the module docstring)."""

    name: str = field("", "block label (e.g. main, ood, extreme_failure)")
    tasks: tuple[TaskKind, ...] = field(tuple(TaskKind), "task families")
    difficulties: tuple[Difficulty, ...] = field(("medium",), "scene difficulty levels")
    perturbations: tuple[Perturbation, ...] = field(("none",), "OOD perturbations")
    policies: tuple[str, ...] = field((), "policy names from the suite's list; empty: all of them")
    shield: tuple[bool, ...] = field((False, True), "shield settings to run each policy with")
    seeds: int = field(3, "seeds per cell")
    first_seed: int = field(0, "seeds are first_seed, first_seed + 1, ...")
    infeasible_fraction: float = field(
        0.0, "share of each cell's seeds (the last ones) run with an absent target"
    )

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("every block needs a name")
        check_range(f"blocks[{self.name}].seeds", self.seeds, 1, None)
        check_range(f"blocks[{self.name}].first_seed", self.first_seed, 0, None)
        check_range(f"blocks[{self.name}].infeasible_fraction", self.infeasible_fraction, 0.0, 1.0)
        for label, values in (("tasks", self.tasks), ("difficulties", self.difficulties),
                              ("perturbations", self.perturbations), ("shield", self.shield)):
            if not values:
                raise ConfigError(f"blocks[{self.name}].{label} is empty; list at least one")
            if len(set(values)) != len(values):
                raise ConfigError(f"blocks[{self.name}].{label}={list(values)!r} lists a value twice")

    @property
    def infeasible_seeds(self) -> int:
        """How many of the cell's seeds are infeasible."""
        return round(self.seeds * self.infeasible_fraction)


@dataclass(frozen=True)
class SuiteConfig:
    """A whole benchmark."""

    name: str = field("suite", "suite label (report title)")
    backend: Literal["mujoco"] = field("mujoco", "simulator backend (sim_bridge.registry name)")
    step_budget: int = field(600, "steps before an episode is cut off (the paper's evaluation budget: 600)")
    camera_size: tuple[int, int] = field(
        (396, 224), "camera (width, height) in pixels; also the frustum of ObjectNav's visibility check"
    )
    policies: tuple[PolicySpec, ...] = field((), "the policies under evaluation")
    blocks: tuple[BlockConfig, ...] = field((), "blocks of cells, expanded in order")
    shield_config: ShieldConfig = field(
        ShieldConfig(), "the predictive shield of the shield-on cells (safevla_node.safety.shield.ShieldConfig): "
        "a mapping, or a robot profile under config/ (robots/<name>.yaml) whose monitor shield section is used, "
        "or a mapping with 'profile: robots/<name>.yaml' and the fields it changes (a margin study)"
    )

    def __post_init__(self) -> None:
        check_range("step_budget", self.step_budget, 1, 10_000)
        if not self.policies:
            raise ConfigError("the suite lists no policies; add at least one under 'policies'")
        if not self.blocks:
            raise ConfigError("the suite lists no blocks; add at least one under 'blocks'")
        names = [p.name for p in self.policies]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"policy name(s) {duplicates} are used twice; names must be unique")
        blocks = [b.name for b in self.blocks]
        if len(set(blocks)) != len(blocks):
            raise ConfigError(f"block names {blocks} must be unique")
        for block in self.blocks:
            unknown = sorted(set(block.policies) - set(names))
            if unknown:
                raise ConfigError(
                    f"blocks[{block.name}].policies names unknown policies {unknown}; known: {names}"
                )

    def policy(self, name: str) -> PolicySpec:
        """The policy called ``name``.

        Raises:
            ConfigError: no such policy.
        """
        for spec in self.policies:
            if spec.name == name:
                return spec
        raise ConfigError(f"unknown policy {name!r}; known: {[p.name for p in self.policies]}")

    def fingerprint(self) -> str:
        """Canonical JSON of the definition; a results folder is only resumed by the same suite."""
        return json.dumps(to_mapping(self), sort_keys=True)


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything needed to run one episode, with the key it is recorded under."""

    seed: int
    task: TaskKind
    difficulty: str
    perturbation: str
    feasible: bool
    policy: PolicySpec
    shield: bool
    step_budget: int
    backend: str
    camera_size: tuple[int, int]
    shield_config: ShieldConfig = ShieldConfig()

    @property
    def key(self) -> str:
        """Stable, readable identity, e.g. ``pickup/medium/none/feasible/expert/shield-on/seed-3``."""
        return "/".join((
            self.task.value, self.difficulty, self.perturbation,
            "feasible" if self.feasible else "infeasible",
            self.policy.name, "shield-on" if self.shield else "shield-off", f"seed-{self.seed}",
        ))

    @property
    def planning_margins(self) -> PlanningMargins:
        """The margins an expert plans around: those of the shield it is evaluated with."""
        return PlanningMargins.of(self.shield_config)

    @property
    def backend_key(self) -> tuple[str, str, str, tuple[int, int]]:
        """Episodes with equal backend keys can share one backend instance."""
        return (self.backend, self.difficulty, self.perturbation, self.camera_size)


def expand(suite: SuiteConfig) -> list[EpisodeSpec]:
    """All episodes of ``suite`` in a deterministic order (seed-major, so a partial run covers every cell).

    An episode produced by more than one block appears once, at its first position.
    """
    specs: dict[str, EpisodeSpec] = {}
    for block in suite.blocks:
        policies = [suite.policy(n) for n in block.policies] if block.policies else list(suite.policies)
        feasible_seeds = block.seeds - block.infeasible_seeds
        for i in range(block.seeds):
            for task in block.tasks:
                for difficulty in block.difficulties:
                    for perturbation in block.perturbations:
                        for policy in policies:
                            for shield in block.shield:
                                spec = EpisodeSpec(
                                    seed=block.first_seed + i, task=TaskKind(task), difficulty=difficulty,
                                    perturbation=perturbation, feasible=i < feasible_seeds, policy=policy,
                                    shield=shield, step_budget=suite.step_budget, backend=suite.backend,
                                    camera_size=suite.camera_size, shield_config=suite.shield_config,
                                )
                                specs.setdefault(spec.key, spec)
    return list(specs.values())


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate a suite file.

    Raises:
        ConfigError: missing file, bad YAML, unknown keys, wrong types or values (naming the file and field).
    """
    data = load_yaml(path)
    try:
        shield = data.get("shield_config")
        if isinstance(shield, str):
            data["shield_config"] = robot_shield_section(shield)
        elif isinstance(shield, dict) and "profile" in shield:
            changes = {k: v for k, v in shield.items() if k != "profile"}
            data["shield_config"] = {**robot_shield_section(shield["profile"]), **changes}
        return from_mapping(SuiteConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def robot_shield_section(robot_file: str) -> dict[str, Any]:
    """The safety monitor's ``shield`` parameters of a robot profile under config/ (``robots/<name>.yaml``),
    so a suite judges the same body as the monitor node of that robot.

    Raises:
        ConfigError: a missing file, or one without ``safety_monitor.ros__parameters.shield``.
    """
    profile = load_yaml(config_path(robot_file))
    section = (profile.get("safety_monitor") or {}).get("ros__parameters", {}).get("shield")
    if not isinstance(section, dict):
        raise ConfigError(f"shield_config: {robot_file} has no safety_monitor.ros__parameters.shield section")
    return section
