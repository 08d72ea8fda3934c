"""Reading and writing policy checkpoints, strictly.

Formats:
- allenact ``.pt`` (``safe_*.pt``, FLaRe RL): ``ckpt["model_state_dict"]`` with this module's exact keys.
- Lightning ``.ckpt`` (FLaRe IL): ``ckpt["state_dict"]`` with a ``model.`` prefix, ``actor.weight`` instead of
  ``actor.linear.weight``, DINOv2 under ``visual_encoder.image_encoder.model.`` and no critic. As the
  original's RL start does, every branch receives the IL weights; the critic heads, absent, are zero.
- ours: a directory with ``config.yaml``, ``model.safetensors`` (policy keys, the tied T5 alias dropped, and
  the image encoder under ``image_encoder.``), ``preprocessor.json`` and optionally ``tokenizer.json``.

Unlike the original (``load_state_dict(strict=False)``), a checkpoint that does not fit raises
``PolicyLoadError`` listing missing, unexpected and mis-shaped keys. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from policies.configuration_safevla import SafeVLAConfig, config_to_mapping, load_policy_config
from safevla_node.errors import ConfigError, PolicyLoadError

__all__ = [
    "CONFIG_FILE",
    "MODEL_FILE",
    "PREPROCESSOR_FILE",
    "TOKENIZER_FILE",
    "Checkpoint",
    "check_state_dict",
    "lightning_to_policy_state",
    "load_dinov2_weights",
    "load_t5_encoder_weights",
    "read_checkpoint",
    "write_pretrained",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.safetensors"
PREPROCESSOR_FILE = "preprocessor.json"
TOKENIZER_FILE = "tokenizer.json"
IMAGE_PREFIX = "image_encoder."
IL_DINOV2_PREFIX = "visual_encoder.image_encoder.model."
_ALIAS, _ALIAS_SOURCE = "text_encoder.shared.weight", "text_encoder.encoder.embed_tokens.weight"
_LIST_LIMIT = 8


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds, in this package's key layout.

    Attributes:
        policy_state: SafeVLAModel keys -> tensors (tied alias included).
        image_state: DINOv2 keys (official layout) -> tensors, or None when the file has none.
        config: the saved config (our format only), else None.
        source_format: "allenact", "lightning" or "pretrained".
        directory: the pretrained directory (our format only).
    """

    policy_state: dict[str, torch.Tensor]
    image_state: dict[str, torch.Tensor] | None
    config: SafeVLAConfig | None
    source_format: str
    directory: Path | None = None


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f", ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else ""
    return f"{len(items)} {title}: {shown}{more}"


def check_state_dict(expected: Mapping[str, torch.Size | tuple[int, ...]], found: Mapping[str, torch.Tensor],
                     source: str) -> None:
    """Raise unless ``found`` has exactly the keys and shapes of ``expected``.

    Raises:
        PolicyLoadError: listing (truncated, with counts) missing, unexpected and mis-shaped keys.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mis_shaped = sorted(f"{k} (checkpoint {list(found[k].shape)}, model {list(expected[k])})"
                        for k in set(expected) & set(found) if tuple(found[k].shape) != tuple(expected[k]))
    if missing or unexpected or mis_shaped:
        parts = [_listing(title, items) for title, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", mis_shaped)) if items]
        raise PolicyLoadError(f"{source} does not fit the model: " + "; ".join(parts)
                              + ". Check that the checkpoint and the config describe the same network.")


def _torch_load(path: Path, trust_pickle: bool) -> object:
    if not path.is_file():
        raise PolicyLoadError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        raise PolicyLoadError(f"{path} holds pickled objects beyond tensors ({str(exc).splitlines()[0]}); if you "
                              "trust the file, load it with trust_pickle=True (--trust-pickle)") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise PolicyLoadError(f"cannot read {path} as a torch checkpoint: {exc}") from None


def _container(data: object, key: str, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(data, Mapping) or key not in data:
        found = sorted(data)[:_LIST_LIMIT] if isinstance(data, Mapping) else type(data).__name__
        raise PolicyLoadError(f"{path}: no '{key}' entry (found {found}); expected an allenact .pt "
                              "(model_state_dict) or a Lightning .ckpt (state_dict)")
    state = data[key]
    if not isinstance(state, Mapping):
        raise PolicyLoadError(f"{path}: '{key}' is a {type(state).__name__}, not a state dict")
    return dict(state)


def lightning_to_policy_state(il_state: Mapping[str, torch.Tensor], config: SafeVLAConfig
                              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Map a Lightning IL ``state_dict`` to (policy state for every branch, DINOv2 state).

    The ``model.`` prefix is stripped, ``actor.weight/bias`` become ``actor.linear.*``, DINOv2 keys are
    split off, the root weights are copied into every critic branch (as the original's RL start) and the
    critic heads, which IL never trained, are zero. Unrecognised keys are kept, so the strict check reports them.
    """
    root: dict[str, torch.Tensor] = {}
    dinov2: dict[str, torch.Tensor] = {}
    for key, tensor in il_state.items():
        name = key.removeprefix("model.")
        if name.startswith(IL_DINOV2_PREFIX):
            dinov2[name.removeprefix(IL_DINOV2_PREFIX)] = tensor
            continue
        if name in ("actor.weight", "actor.bias"):
            name = "actor.linear." + name.split(".")[1]
        root[name] = tensor
    d = config.d_model
    root.setdefault("critic.fc.weight", torch.zeros(1, d))
    root.setdefault("critic.fc.bias", torch.zeros(1))
    logger.warning("Lightning IL checkpoint: no critic was trained, reward and cost values read 0")
    policy: dict[str, torch.Tensor] = {}
    for prefix in config.branch_names:
        policy.update({(f"{prefix}.{k}" if prefix else k): v for k, v in root.items()})
    return policy, dinov2


def _restore_alias(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for key in [k for k in state if k.endswith(_ALIAS_SOURCE)]:
        state.setdefault(key[: -len(_ALIAS_SOURCE)] + _ALIAS, state[key])
    return state


def _read_pretrained(directory: Path) -> Checkpoint:
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (directory / name).is_file():
            raise PolicyLoadError(f"{directory} is not a policy directory: {name} is missing "
                                  "(write one with save_pretrained or `python -m policies.convert`)")
    try:
        config = load_policy_config(directory / CONFIG_FILE)
    except ConfigError as exc:
        raise PolicyLoadError(str(exc)) from None
    try:
        tensors = load_file(str(directory / MODEL_FILE))
    except (SafetensorError, OSError) as exc:
        raise PolicyLoadError(f"cannot read {directory / MODEL_FILE}: {exc}") from None
    image = {k.removeprefix(IMAGE_PREFIX): v for k, v in tensors.items() if k.startswith(IMAGE_PREFIX)}
    policy = _restore_alias({k: v for k, v in tensors.items() if not k.startswith(IMAGE_PREFIX)})
    return Checkpoint(policy, image or None, config, "pretrained", directory)


def read_checkpoint(path: str | Path, config: SafeVLAConfig | None = None, trust_pickle: bool = False) -> Checkpoint:
    """Read any supported format (our directory, allenact ``.pt``, Lightning ``.ckpt``).

    ``config`` is needed to expand a Lightning file into branches (default: the full SafeVLA config).

    Raises:
        PolicyLoadError: missing file, unreadable or unrecognised content.
    """
    path = Path(path)
    if path.is_dir():
        return _read_pretrained(path)
    data = _torch_load(path, trust_pickle)
    if isinstance(data, Mapping) and "model_state_dict" in data:
        return Checkpoint(_container(data, "model_state_dict", path), None, None, "allenact")
    il_state = _container(data, "state_dict", path)
    policy, dinov2 = lightning_to_policy_state(il_state, config or SafeVLAConfig())
    return Checkpoint(policy, dinov2 or None, None, "lightning")


def _drop_alias(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.endswith(_ALIAS)}


def write_pretrained(directory: str | Path, config: SafeVLAConfig, policy_state: Mapping[str, torch.Tensor],
                     image_state: Mapping[str, torch.Tensor] | None, preprocessor: Mapping[str, object]) -> Path:
    """Write our format (config.yaml, model.safetensors, preprocessor.json); returns the directory."""
    import yaml

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in _drop_alias(policy_state).items()}
    if image_state is not None:
        tensors.update({IMAGE_PREFIX + k: v.detach().cpu().contiguous().clone() for k, v in image_state.items()})
    save_file(tensors, str(directory / MODEL_FILE), metadata={"format": "safevla-policy", "version": "1"})
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(config_to_mapping(config), sort_keys=False))
    (directory / PREPROCESSOR_FILE).write_text(json.dumps(dict(preprocessor), indent=1))
    return directory


def load_dinov2_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The official ``dinov2_vits14_pretrain.pth`` (a plain state dict) from local disk.

    Raises:
        PolicyLoadError: the file is missing (with where to get it) or is not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise PolicyLoadError(
            f"DINOv2 weights not found: {path}. Download dinov2_vits14_pretrain.pth from the facebookresearch/dinov2 "
            "release on a machine with network access and pass its local path; nothing is downloaded at run time")
    data = _torch_load(path, trust_pickle=False)
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise PolicyLoadError(f"{path} is not a DINOv2 state dict (expected keys like 'cls_token', 'blocks.0...')")
    return dict(data)


def load_t5_encoder_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """Encoder weights (``shared.*``, ``encoder.*``) of a local Hugging Face t5-small directory.

    Raises:
        PolicyLoadError: neither model.safetensors nor pytorch_model.bin is in ``directory``.
    """
    directory = Path(directory)
    if (directory / "model.safetensors").is_file():
        state = load_file(str(directory / "model.safetensors"))
    elif (directory / "pytorch_model.bin").is_file():
        state = _container({"s": _torch_load(directory / "pytorch_model.bin", False)}, "s", directory)
    else:
        raise PolicyLoadError(f"no T5 weights in {directory}: expected model.safetensors or pytorch_model.bin of a "
                              "local t5-small download")
    encoder = {k: v for k, v in state.items() if k.startswith(("shared.", "encoder."))}
    if "shared.weight" not in encoder:
        raise PolicyLoadError(f"{directory} has no 'shared.weight': not a T5 checkpoint")
    encoder.setdefault("encoder.embed_tokens.weight", encoder["shared.weight"])
    return encoder
