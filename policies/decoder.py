"""Causal LLaMA-style decoder of the policy (SafeVLA's ``training/online/third_party_models/llama``).

Pre-norm blocks with RMSNorm, bias-free projections, SwiGLU feed-forward and an output Linear. There are no
rotary tables: the original builds none, time enters through the sinusoidal encoder before the decoder.
The key/value cache is an explicit object owned by the caller, not module state, so one decoder can serve
several episodes and a step costs O(history) attention reads instead of recomputing the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KVCache", "LlamaDecoder", "RMSNorm"]


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 as the original does."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


@dataclass
class KVCache:
    """Keys and values of every decoder layer for the steps seen so far.

    Attributes:
        keys: (layers, batch, max_len, heads, head_dim).
        values: same shape as keys.
        length: number of valid positions.
    """

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0

    @classmethod
    def empty(cls, layers: int, batch: int, max_len: int, heads: int, head_dim: int,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> KVCache:
        """A zeroed cache for ``max_len`` steps."""
        shape = (layers, batch, max_len, heads, head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))

    @property
    def capacity(self) -> int:
        """Maximum number of positions."""
        return self.keys.shape[2]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        batch, length, dim = x.shape
        shape = (batch, length, self.heads, self.head_dim)
        q, k, v = self.wq(x).view(shape), self.wk(x).view(shape), self.wv(x).view(shape)
        if cache is None:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                 is_causal=length > 1)
        else:
            start = cache.length
            cache.keys[layer, :batch, start:start + length] = k.to(cache.keys.dtype)
            cache.values[layer, :batch, start:start + length] = v.to(cache.values.dtype)
            keys = cache.keys[layer, :batch, :start + length].to(q.dtype).transpose(1, 2)
            values = cache.values[layer, :batch, :start + length].to(q.dtype).transpose(1, 2)
            mask = None
            if length > 1:  # new rows see the whole cache plus the causal part of the new block
                mask = torch.ones(length, start + length, dtype=torch.bool, device=x.device).tril(start)
            out = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(batch, length, dim))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.attention = _Attention(dim, heads)
        self.feed_forward = _FeedForward(dim, hidden)
        self.attention_norm = RMSNorm(dim, eps)
        self.ffn_norm = RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), cache, layer)
        return h + self.feed_forward(self.ffn_norm(h))


class LlamaDecoder(nn.Module):
    """(B, T, D) step embeddings -> (B, T, D) beliefs, causally; with a cache, T new steps are appended."""

    def __init__(self, dim: int, layers: int, heads: int, ffn_hidden: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.layers = nn.ModuleList(_Block(dim, heads, ffn_hidden, eps) for _ in range(layers))
        self.norm = RMSNorm(dim, eps)
        self.output = nn.Linear(dim, dim, bias=False)

    def new_cache(self, batch: int, max_len: int, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> KVCache:
        """An empty cache sized for this decoder."""
        dim = self.output.in_features
        return KVCache.empty(len(self.layers), batch, max_len, self.heads, dim // self.heads, device, dtype)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Decode; with ``cache`` the new steps attend to all cached ones and are appended to it.

        Raises:
            ValueError: the cache has no room for the new steps.
        """
        if cache is not None and cache.length + x.shape[1] > cache.capacity:
            raise ValueError(f"KV cache full: {cache.length} + {x.shape[1]} steps > capacity {cache.capacity}")
        h = x
        for index, layer in enumerate(self.layers):
            h = layer(h, cache, index)
        if cache is not None:
            cache.length += x.shape[1]
        return self.output(self.norm(h)).float()
