"""Pretrained encoders the policy wraps: DINOv2 ViT (images) and the T5 encoder stack (instructions)."""

from policies.encoders.dinov2 import DinoVisionTransformer, PooledDinoFeatures
from policies.encoders.t5 import T5EncoderModel

__all__ = ["DinoVisionTransformer", "PooledDinoFeatures", "T5EncoderModel"]
