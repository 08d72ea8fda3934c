"""Causal LLaMA-style decoder of the policy (SafeVLA's ``training/online/third_party_models/llama``).

Pre-norm blocks with RMSNorm, bias-free projections, SwiGLU feed-forward and an output Linear. There are no
rotary tables: the original builds none, time enters through the sinusoidal encoder before the decoder.
The key/value cache is an explicit object owned by the caller, not module state, so one decoder can serve
several episodes and a step costs O(history) attention reads instead of recomputing the history. Two kinds:
``KVCache``, whose rows share one length (an episode, or a batch of episodes started together: deployment),
and ``SlotKVCache``, whose rows each have their own (training rollouts step every environment slot at once,
and their episodes started at different steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KVCache", "LlamaDecoder", "RMSNorm", "SlotKVCache"]


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

    def restart_if_full(self) -> bool:
        """Drop the history when no position is left (the original's step counter wraps); True when it did."""
        if self.length < self.capacity:
            return False
        self.length = 0
        return True

    def check_room(self, new: int) -> None:
        """Raises ValueError when ``new`` more positions do not fit."""
        if self.length + new > self.capacity:
            raise ValueError(f"KV cache full: {self.length} + {new} steps > capacity {self.capacity}")

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor | None]:
        """Store ``layer``'s new keys/values (B, T, heads, head_dim) after the history; returns the keys and
        values to attend to, (B, heads, history + T, head_dim), and the mask (None: every key is visible)."""
        batch, new = k.shape[:2]
        start = self.length
        self.keys[layer, :batch, start:start + new] = k.to(self.keys.dtype)
        self.values[layer, :batch, start:start + new] = v.to(self.values.dtype)
        keys = self.keys[layer, :batch, :start + new].to(k.dtype).transpose(1, 2)
        values = self.values[layer, :batch, :start + new].to(v.dtype).transpose(1, 2)
        mask = None
        if new > 1:  # new rows see the whole cache plus the causal part of the new block
            mask = torch.ones(new, start + new, dtype=torch.bool, device=k.device).tril(start)
        return keys, values, mask

    def advance(self, new: int) -> None:
        """The new positions are now history."""
        self.length += new


@dataclass
class SlotKVCache:
    """A cache whose rows (environment slots) each hold their own episode's history, one step at a time.

    Attributes:
        keys: (layers, slots, max_len, heads, head_dim).
        values: same shape as keys.
        lengths: (slots,) valid positions per row.
    """

    keys: torch.Tensor
    values: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def empty(cls, layers: int, slots: int, max_len: int, heads: int, head_dim: int,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> SlotKVCache:
        """A zeroed cache for ``max_len`` steps in every row."""
        base = KVCache.empty(layers, slots, max_len, heads, head_dim, device, dtype)
        return cls(base.keys, base.values, torch.zeros(slots, dtype=torch.long, device=device))

    @property
    def capacity(self) -> int:
        """Maximum number of positions per row."""
        return self.keys.shape[2]

    def restart_if_full(self) -> bool:
        """Drop the history of every full row; True when one was."""
        full = self.lengths >= self.capacity
        self.lengths[full] = 0
        return bool(full.any())

    def check_room(self, new: int) -> None:
        """Raises ValueError for more than one new step or a full row."""
        if new != 1:
            raise ValueError(f"a slot cache advances one step at a time, got {new}")
        if int(self.lengths.max()) + 1 > self.capacity:
            raise ValueError(f"KV cache full: a row holds {int(self.lengths.max())} steps, capacity {self.capacity}")

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor | None]:
        """Store each row's new key/value at that row's length; the mask hides every row's positions past it
        (rows are padded to the longest history)."""
        rows = torch.arange(k.shape[0], device=k.device)
        self.keys[layer, rows, self.lengths] = k[:, 0].to(self.keys.dtype)
        self.values[layer, rows, self.lengths] = v[:, 0].to(self.values.dtype)
        span = int(self.lengths.max()) + 1
        keys = self.keys[layer, :, :span].to(k.dtype).transpose(1, 2)
        values = self.values[layer, :, :span].to(v.dtype).transpose(1, 2)
        visible = torch.arange(span, device=k.device)[None, :] <= self.lengths[:, None]
        return keys, values, visible[:, None, None, :]

    def advance(self, new: int) -> None:
        """The new step is now history in every row."""
        self.lengths += new


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cache: KVCache | SlotKVCache | None, layer: int) -> torch.Tensor:
        batch, length, dim = x.shape
        shape = (batch, length, self.heads, self.head_dim)
        q, k, v = self.wq(x).view(shape), self.wk(x).view(shape), self.wv(x).view(shape)
        if cache is None:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                 is_causal=length > 1)
        else:
            keys, values, mask = cache.extend(layer, k, v)
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

    def forward(self, x: torch.Tensor, cache: KVCache | SlotKVCache | None, layer: int) -> torch.Tensor:
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
                  dtype: torch.dtype = torch.float32, per_row: bool = False) -> KVCache | SlotKVCache:
        """An empty cache sized for this decoder; ``per_row``: a ``SlotKVCache``, rows at their own lengths."""
        kind = SlotKVCache if per_row else KVCache
        dim = self.output.in_features
        return kind.empty(len(self.layers), batch, max_len, self.heads, dim // self.heads, device, dtype)

    def forward(self, x: torch.Tensor, cache: KVCache | SlotKVCache | None = None) -> torch.Tensor:
        """Decode; with ``cache`` the new steps attend to all cached ones and are appended to it.

        Raises:
            ValueError: the cache has no room for the new steps.
        """
        if cache is not None:
            cache.check_room(x.shape[1])
        h = x
        for index, layer in enumerate(self.layers):
            h = layer(h, cache, index)
        if cache is not None:
            cache.advance(x.shape[1])
        return self.output(self.norm(h)).float()
