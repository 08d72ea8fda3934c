"""Typed, validated configuration of the SafeVLA policy network (no torch here).

Every size of the original SafeDinoLLAMATxNavActorCriticSeparate is a field, so the released network and a
tiny CPU-trainable variant are the same code with different numbers. Defaults are the released sizes
(REFERENCE section 1 "Policy"); ``config/policy_safevla_full.yaml`` and ``config/policy_tiny.yaml`` ship both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safevla_node.config import check_range, field, from_mapping, load_yaml, to_mapping
from safevla_node.errors import ConfigError

__all__ = [
    "ImageEncoderConfig",
    "SafeVLAConfig",
    "TextEncoderConfig",
    "config_to_mapping",
    "load_policy_config",
]


def _positive(owner: object, *names: str) -> None:
    for name in names:
        check_range(f"{type(owner).__name__}.{name}", getattr(owner, name), 1)


@dataclass(frozen=True)
class ImageEncoderConfig:
    """DINOv2-style ViT (patch embedding, learned 2-D position table, layer scale, final LayerNorm)."""

    patch_size: int = field(14, "ViT patch side (px).")
    embed_dim: int = field(384, "ViT width (ViT-S/14: 384); also the channel count of the pooled features.")
    depth: int = field(12, "Number of ViT blocks.")
    num_heads: int = field(6, "Attention heads per block.")
    mlp_ratio: float = field(4.0, "MLP hidden width / embed_dim.")
    pos_grid: int = field(37, "Side of the square pretraining position table (518 px / 14 = 37).")
    interpolate_offset: float = field(0.1, "DINOv2's offset added to the target grid before bicubic scaling.")
    layer_norm_eps: float = field(1e-6, "LayerNorm epsilon.")
    image_height: int = field(224, "Model input height (px) after preprocessing.")
    image_width: int = field(384, "Model input width (px) after preprocessing, before the side crop.")
    crop_width: int = field(3, "Columns removed on each side before the ViT (384 -> 378, 27 patches).")

    def __post_init__(self) -> None:
        _positive(self, "patch_size", "embed_dim", "depth", "num_heads", "pos_grid", "image_height")
        check_range("ImageEncoderConfig.mlp_ratio", self.mlp_ratio, 0.25)
        check_range("ImageEncoderConfig.crop_width", self.crop_width, 0, self.image_width // 4)
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"ImageEncoderConfig.embed_dim={self.embed_dim} is not divisible by "
                              f"num_heads={self.num_heads}")
        for name, size in (("image_height", self.image_height), ("cropped width", self.cropped_width)):
            if size % self.patch_size:
                raise ConfigError(f"ImageEncoderConfig {name}={size} is not a multiple of "
                                  f"patch_size={self.patch_size}")

    @property
    def cropped_width(self) -> int:
        """Width the ViT sees (px)."""
        return self.image_width - 2 * self.crop_width

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Patch rows and columns (16 x 27 for the released model)."""
        return self.image_height // self.patch_size, self.cropped_width // self.patch_size


@dataclass(frozen=True)
class TextEncoderConfig:
    """T5 encoder stack (t5-small sizes by default): relative position buckets, RMS layer norm, ReLU FFN."""

    vocab_size: int = field(32128, "Token embedding rows.")
    d_model: int = field(512, "Hidden width.")
    d_kv: int = field(64, "Per-head key/value width.")
    d_ff: int = field(2048, "Feed-forward hidden width.")
    num_layers: int = field(6, "Encoder blocks.")
    num_heads: int = field(8, "Attention heads.")
    relative_attention_num_buckets: int = field(32, "Relative position buckets (bidirectional).")
    relative_attention_max_distance: int = field(128, "Distance beyond which buckets saturate.")
    layer_norm_eps: float = field(1e-6, "T5LayerNorm epsilon.")
    pad_token_id: int = field(0, "Padding id (T5: 0).")
    eos_token_id: int = field(1, "End-of-sequence id appended by the tokenizer (T5: 1).")

    def __post_init__(self) -> None:
        _positive(self, "vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                  "relative_attention_num_buckets", "relative_attention_max_distance")
        check_range("TextEncoderConfig.relative_attention_num_buckets", self.relative_attention_num_buckets, 4)


@dataclass(frozen=True)
class SafeVLAConfig:
    """The whole policy: image encoder (outside the RL checkpoint), fusion encoder, causal decoder, heads."""

    name: str = field("safevla", "Free-form name written into saved checkpoints.")
    d_model: int = field(512, "Width of the fusion encoder, decoder and heads (hidden_size).")
    num_actions: int = field(20, "Actor logits (ALL_STRETCH_ACTIONS).")
    fusion_layers: int = field(3, "nn.TransformerEncoder layers over [fusion, nav, manip, text] tokens.")
    fusion_heads: int = field(8, "Fusion encoder attention heads.")
    fusion_ff: int = field(2048, "Fusion encoder feed-forward width (torch default 2048).")
    compressor_hidden: int = field(512, "Hidden channels of the 1x1-conv visual compressor.")
    pooled_grid: tuple[int, int] = field((7, 12), "Adaptive-average-pooled patch grid (rows, cols).")
    decoder_layers: int = field(3, "LLaMA-style decoder blocks.")
    decoder_heads: int = field(8, "Decoder attention heads.")
    decoder_ffn_hidden: int = field(1536, "SwiGLU hidden width (LLaMA rule from 4*d: 1536 for d=512).")
    decoder_norm_eps: float = field(1e-5, "RMSNorm epsilon of the decoder (LLaMA ModelArgs default).")
    max_steps: int = field(500, "KV-cache length; the step counter restarts (history dropped) when full.")
    object_in_hand_rows: int = field(3, "Rows of the object-in-hand embedding.")
    cost_critic: bool = field(True, "True: SafeVLA (reward + cost critic copies); false: FLaRe (reward only).")
    camera_names: tuple[str, ...] = field(
        ("raw_navigation_camera", "raw_manipulation_camera"), "Camera token names, in fusion order.")
    image_encoder: ImageEncoderConfig = field(ImageEncoderConfig(), "DINOv2 ViT-S/14 sizes.")
    text_encoder: TextEncoderConfig = field(TextEncoderConfig(), "t5-small encoder sizes.")

    def __post_init__(self) -> None:
        _positive(self, "d_model", "num_actions", "fusion_layers", "fusion_heads", "fusion_ff",
                  "compressor_hidden", "decoder_layers", "decoder_heads", "decoder_ffn_hidden", "max_steps",
                  "object_in_hand_rows")
        for name, heads in (("fusion_heads", self.fusion_heads), ("decoder_heads", self.decoder_heads)):
            if self.d_model % heads:
                raise ConfigError(f"SafeVLAConfig.d_model={self.d_model} is not divisible by {name}={heads}")
        if self.d_model % 2:
            raise ConfigError(f"SafeVLAConfig.d_model={self.d_model} must be even (sinusoidal time encoding)")
        rows, cols = self.pooled_grid
        grid_rows, grid_cols = self.image_encoder.patch_grid
        if not (1 <= rows <= grid_rows and 1 <= cols <= grid_cols):
            raise ConfigError(f"SafeVLAConfig.pooled_grid={self.pooled_grid} must lie within the patch grid "
                              f"{self.image_encoder.patch_grid}")
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ConfigError(f"SafeVLAConfig.camera_names={self.camera_names!r} must be non-empty and unique")

    @property
    def start_token(self) -> int:
        """Previous-action index fed at an episode's first step (20 in the original)."""
        return self.num_actions

    @property
    def branch_names(self) -> tuple[str, ...]:
        """State-dict prefixes of the network copies: root (actor), reward critic, cost critic."""
        return ("", "critic_tsfm") + (("c_critic_tsfm",) if self.cost_critic else ())


def load_policy_config(path: str | Path) -> SafeVLAConfig:
    """Read a policy YAML file into a validated SafeVLAConfig.

    Raises:
        ConfigError: the file is missing, malformed, has unknown keys or out-of-range values.
    """
    try:
        return from_mapping(SafeVLAConfig, load_yaml(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_to_mapping(config: SafeVLAConfig) -> dict[str, Any]:
    """Plain-data form for YAML (used by save_pretrained)."""
    return to_mapping(config)
