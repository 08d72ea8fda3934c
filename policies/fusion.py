"""Early-fusion observation encoder (the original's ``DinoTxGoalEncoder``, key prefix ``visual_encoder``).

Per step it turns the pooled DINOv2 grids of both cameras and the adapted instruction tokens into one
vector: 1x1-conv compressor -> Linear/LayerNorm/ReLU adapter -> + per-camera token, then a post-norm
``nn.TransformerEncoder`` over [fusion token, nav patches, manip patches, text tokens]; the fusion token's
output is the observation embedding. The T5 encoder runs once per instruction (``encode_text``), not per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from policies.configuration_safevla import SafeVLAConfig
from policies.encoders.t5 import T5EncoderModel

__all__ = ["ObservationFusion"]


def _adapter(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.ReLU())


class ObservationFusion(nn.Module):
    """Cameras + instruction -> (B, d_model) observation embedding."""

    def __init__(self, cfg: SafeVLAConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.camera_names = cfg.camera_names
        self.fusion_token = nn.Parameter(0.1 * torch.rand(d))
        for name in cfg.camera_names:
            setattr(self, f"visual_sensor_token_{name}", nn.Parameter(0.1 * torch.rand(d)))
        self.text_encoder = T5EncoderModel(cfg.text_encoder)
        self.text_adapter = _adapter(cfg.text_encoder.d_model, d)
        channels = cfg.image_encoder.embed_dim
        self.visual_compressor = nn.Sequential(
            nn.Conv2d(channels, cfg.compressor_hidden, 1), nn.ReLU(),
            nn.Conv2d(cfg.compressor_hidden, d, 1), nn.ReLU(),
        )
        self.visual_adapter = _adapter(d, d)
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=cfg.fusion_heads, dim_feedforward=cfg.fusion_ff,
                                           batch_first=True)
        self.fusion_xformer = nn.TransformerEncoder(layer, num_layers=cfg.fusion_layers, enable_nested_tensor=False)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids (B,L) -> adapted text tokens (B,L,d_model). The frozen T5 runs without gradients."""
        with torch.no_grad():
            hidden = self.text_encoder(input_ids, attention_mask)
        return self.text_adapter(hidden)

    def camera_tokens(self, pooled: torch.Tensor, camera: str) -> torch.Tensor:
        """Pooled grid (B,C,rows,cols) -> (B, rows*cols, d_model) adapted patch tokens plus the camera token."""
        # The 1x1 convolutions applied as matmuls over the grid cells: same weights and result, but CPU
        # convolution kernels are far slower than a GEMM for 1x1 kernels at batch 1.
        x = pooled.flatten(start_dim=2).transpose(1, 2)
        for index in (0, 2):
            conv = self.visual_compressor[index]
            x = F.relu(F.linear(x, conv.weight.flatten(1), conv.bias))
        return self.visual_adapter(x) + getattr(self, f"visual_sensor_token_{camera}")

    def fusion_input(self, pooled: dict[str, torch.Tensor], text_tokens: torch.Tensor) -> torch.Tensor:
        """The fusion encoder's input sequence (B, 1 + cameras*rows*cols + L, d_model)."""
        batch = text_tokens.shape[0]
        parts = [self.fusion_token.view(1, 1, -1).expand(batch, -1, -1)]
        parts += [self.camera_tokens(pooled[name], name) for name in self.camera_names]
        parts.append(text_tokens)
        return torch.cat(parts, dim=1)

    def forward(self, pooled: dict[str, torch.Tensor], text_tokens: torch.Tensor,
                text_padding: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled camera grids by camera name + adapted text tokens -> (B, d_model) fusion-token output.

        ``text_padding`` (B, L), True past the end of a row's instruction: rows of different instruction
        lengths padded to one. The original attends to every text token, so rows run in groups of one
        instruction length, unpadded: exact, and faster on a CPU than a key-padding mask, whose fused
        masked softmax costs 3x the unmasked layer there.
        """
        if text_padding is None or not bool(text_padding.any()):
            return self.fusion_xformer(self.fusion_input(pooled, text_tokens))[:, 0]
        lengths = (~text_padding).sum(dim=1)
        out = text_tokens.new_empty(text_tokens.shape[0], text_tokens.shape[2])
        for length in lengths.unique().tolist():
            rows = torch.nonzero(lengths == length).flatten()
            group = {name: grid[rows] for name, grid in pooled.items()}
            out[rows] = self.fusion_xformer(self.fusion_input(group, text_tokens[rows, :length]))[:, 0]
        return out
