"""Seeded synthetic weights by the golden README's rule, so anyone can rebuild the golden model's tensors.

Rule (``shared/data/safevla_golden/README.md``): walk the keys in ``sorted()`` order with
``torch.Generator().manual_seed(seed)``; ``time_encoder.div_term`` gets its computed value, the tied
``text_encoder.shared.weight`` aliases ``encoder.embed_tokens.weight``, norm weights are ones and biases zeros,
everything else ``randn * 0.02``. ``state_dict_sha256`` is the README's hash over all keys in sorted order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import torch

__all__ = ["is_norm_key", "state_dict_sha256", "synthetic_state_dict"]

_ALIAS_SUFFIX = "text_encoder.shared.weight"
_ALIAS_SOURCE = "text_encoder.encoder.embed_tokens.weight"


def is_norm_key(key: str) -> bool:
    """True for parameters of LayerNorm / RMSNorm / T5LayerNorm modules (README rule 3)."""
    parts = key.split(".")
    if len(parts) < 2:
        return False
    module = parts[-2]
    return "norm" in module or (module == "1" and len(parts) >= 3 and parts[-3] in ("text_adapter", "visual_adapter"))


def synthetic_state_dict(shapes: Mapping[str, Sequence[int]], seed: int) -> dict[str, torch.Tensor]:
    """Tensors for every key of ``shapes`` by the golden rule (float32, CPU)."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("time_encoder.div_term"):
            out[key] = torch.exp(torch.arange(0, 2 * shape[0], 2) * (-math.log(10000.0) / (2 * shape[0])))
        elif key.endswith(_ALIAS_SUFFIX):
            out[key] = out[key[: -len(_ALIAS_SUFFIX)] + _ALIAS_SOURCE]
        elif is_norm_key(key) and key.endswith(".weight"):
            out[key] = torch.ones(shape)
        elif is_norm_key(key) and key.endswith(".bias"):
            out[key] = torch.zeros(shape)
        else:
            out[key] = torch.randn(shape, generator=generator) * 0.02
    return out


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the little-endian float32 bytes of every tensor in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(state[key].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes())
    return digest.hexdigest()
