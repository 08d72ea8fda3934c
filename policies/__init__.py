"""The SafeVLA policy: model, checkpoints and runtime (torch lives here and nowhere in the safety core)."""

from policies.configuration_safevla import ImageEncoderConfig, SafeVLAConfig, TextEncoderConfig, load_policy_config
from policies.modeling_safevla import SafeVLAModel, StepOutput
from policies.processor_safevla import ImageProcessor, WordTokenizer, load_tokenizer

__all__ = [
    "ImageEncoderConfig",
    "ImageProcessor",
    "SafeVLAConfig",
    "SafeVLAModel",
    "StepOutput",
    "TextEncoderConfig",
    "WordTokenizer",
    "load_policy_config",
    "load_tokenizer",
]
