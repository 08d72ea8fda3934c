"""Shared fixtures of the policy tests: the manifest, the golden files and the synthetic-weight full model.

The full model (~169 M parameters) is built once per session and shared; tests that run it must reset
their own episode state (they do: every run starts with ``start_episode``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from policies.configuration_safevla import SafeVLAConfig, load_policy_config
from policies.modeling_safevla import SafeVLAModel
from policies.synthetic import synthetic_state_dict



def _find_shared_data() -> Path:
    """``$SAFEVLA_SHARED_DATA``, else the nearest ``shared/data`` in the checkout or above it."""
    if os.environ.get("SAFEVLA_SHARED_DATA"):
        return Path(os.environ["SAFEVLA_SHARED_DATA"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "data" / "safevla_state_dict_manifest.json").is_file():
            return parent / "shared" / "data"
    return Path("shared") / "data"


DATA = _find_shared_data()
GOLDEN = DATA / "safevla_golden"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """Directory of the golden outputs of the original model."""
    if not (GOLDEN / "golden.json").is_file():
        pytest.skip(f"golden files not found in {GOLDEN}")
    return GOLDEN


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    """The state-dict manifest of the released checkpoints."""
    path = DATA / "safevla_state_dict_manifest.json"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path}")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def rl_shapes(manifest: dict[str, Any]) -> dict[str, list[int]]:
    """Key -> shape of safe_*.pt (417 keys)."""
    return {k: v["shape"] for k, v in manifest["checkpoints"]["safevla_allenact_pt"]["keys"].items()}


@pytest.fixture(scope="session")
def dinov2_shapes(manifest: dict[str, Any]) -> dict[str, list[int]]:
    """Key -> shape of the official dinov2_vits14 checkpoint (175 keys)."""
    return {k: v["shape"] for k, v in manifest["outside_state_dict"][0]["keys"].items()}


@pytest.fixture(scope="session")
def golden_state(rl_shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Seed-0 synthetic weights of the golden run."""
    return synthetic_state_dict(rl_shapes, seed=0)


@pytest.fixture(scope="session")
def full_model(golden_state: dict[str, torch.Tensor]) -> SafeVLAModel:
    """The full SafeVLA network, strictly loaded with the golden weights, in eval mode."""
    model = SafeVLAModel(SafeVLAConfig()).eval()
    model.load_state_dict(golden_state, strict=True)
    return model


@pytest.fixture(scope="session")
def tiny_config() -> SafeVLAConfig:
    """The shipped tiny configuration."""
    return load_policy_config(REPO / "config" / "policy_tiny.yaml")


@pytest.fixture
def tiny_policy(tiny_config: SafeVLAConfig):
    """A seeded tiny policy on CPU with an image encoder and the word tokenizer."""
    from policies.encoders.dinov2 import PooledDinoFeatures
    from policies.processor_safevla import WordTokenizer
    from policies.runtime import SafeVLAPolicy

    torch.manual_seed(0)
    model = SafeVLAModel(tiny_config)
    encoder = PooledDinoFeatures(tiny_config.image_encoder, tiny_config.pooled_grid)
    return SafeVLAPolicy(tiny_config, model, encoder, WordTokenizer.from_texts([]), device="cpu", precision="fp32")
