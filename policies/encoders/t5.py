"""T5 encoder stack with Hugging Face ``T5EncoderModel`` state-dict names (as stored inside safe_*.pt).

Behaviour of HF T5 (transformers 4.46, the version SafeVLA pins) for inference: RMS "T5LayerNorm" without mean
subtraction, unscaled dot-product attention plus a learned bidirectional relative-position bias computed by
the first block and shared by all blocks, ReLU feed-forward, final RMS norm. ``shared`` and
``encoder.embed_tokens`` are one module, so both keys appear in ``state_dict()`` exactly as in the checkpoint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from policies.configuration_safevla import TextEncoderConfig

__all__ = ["T5EncoderModel", "relative_position_bucket"]


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 bucket of ``key_pos - query_pos``: exact for small offsets, log-spaced beyond."""
    num_buckets //= 2
    buckets = (relative_position > 0).long() * num_buckets
    distance = relative_position.abs()
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, distance, large)


class _T5LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps)).to(self.weight.dtype)


class _T5Attention(nn.Module):
    def __init__(self, cfg: TextEncoderConfig, has_relative_bias: bool) -> None:
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.cfg = cfg
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """(1, heads, L, L) additive bias from the relative position buckets."""
        positions = torch.arange(length, device=device)
        relative = positions[None, :] - positions[:, None]
        bucket = relative_position_bucket(relative, self.cfg.relative_attention_num_buckets,
                                          self.cfg.relative_attention_max_distance)
        return self.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        heads, d_kv = self.cfg.num_heads, self.cfg.d_kv

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, heads, d_kv).transpose(1, 2)

        scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) + bias
        weights = F.softmax(scores.float(), dim=-1).type_as(scores)
        out = (weights @ split(self.v(x))).transpose(1, 2).reshape(batch, length, heads * d_kv)
        return self.o(out)


class _SelfAttentionLayer(nn.Module):
    def __init__(self, cfg: TextEncoderConfig, has_relative_bias: bool) -> None:
        super().__init__()
        self.SelfAttention = _T5Attention(cfg, has_relative_bias)  # noqa: N815 (HF key name)
        self.layer_norm = _T5LayerNorm(cfg.d_model, cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + self.SelfAttention(self.layer_norm(x), bias)


class _DenseReluDense(nn.Module):
    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(F.relu(self.wi(x)))


class _FeedForwardLayer(nn.Module):
    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.DenseReluDense = _DenseReluDense(cfg)  # noqa: N815 (HF key name)
        self.layer_norm = _T5LayerNorm(cfg.d_model, cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


class _T5Block(nn.Module):
    def __init__(self, cfg: TextEncoderConfig, has_relative_bias: bool) -> None:
        super().__init__()
        self.layer = nn.ModuleList([_SelfAttentionLayer(cfg, has_relative_bias), _FeedForwardLayer(cfg)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.layer[1](self.layer[0](x, bias))


class _T5Stack(nn.Module):
    def __init__(self, cfg: TextEncoderConfig, embed_tokens: nn.Embedding) -> None:
        super().__init__()
        self.embed_tokens = embed_tokens
        self.block = nn.ModuleList(_T5Block(cfg, has_relative_bias=i == 0) for i in range(cfg.num_layers))
        self.final_layer_norm = _T5LayerNorm(cfg.d_model, cfg.layer_norm_eps)


class T5EncoderModel(nn.Module):
    """``T5EncoderModel`` for inference: token ids (B,L) + attention mask (B,L) -> last hidden state (B,L,D)."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = _T5Stack(cfg, self.shared)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden state; padded positions (mask 0) are excluded as keys."""
        x = self.encoder.embed_tokens(input_ids)
        first_attention = self.encoder.block[0].layer[0].SelfAttention
        bias = first_attention.position_bias(input_ids.shape[1], input_ids.device).to(x.dtype)
        if attention_mask is not None:
            pad = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            bias = bias + pad
        for block in self.encoder.block:
            x = block(x, bias)
        return self.encoder.final_layer_norm(x)
