"""The SafeVLA policy: model, checkpoints and runtime (torch lives here and nowhere in the safety core).

LeRobot-style layout: ``configuration_safevla`` (sizes), ``modeling_safevla`` (network), ``processor_safevla``
(images, tokenizers), ``checkpoints`` (strict loading, our format), ``runtime`` (``SafeVLAPolicy``).
"""

from policies.checkpoints import Checkpoint, check_state_dict, load_dinov2_weights, read_checkpoint
from policies.configuration_safevla import ImageEncoderConfig, SafeVLAConfig, TextEncoderConfig, load_policy_config
from policies.convert import convert
from policies.modeling_safevla import SafeVLAModel, StepOutput
from policies.processor_safevla import ImageProcessor, TokenizedInstruction, WordTokenizer, load_tokenizer
from policies.runtime import PolicyObservation, PolicyOutput, SafeVLAPolicy, select_device

__all__ = [
    "Checkpoint",
    "ImageEncoderConfig",
    "ImageProcessor",
    "PolicyObservation",
    "PolicyOutput",
    "SafeVLAConfig",
    "SafeVLAModel",
    "SafeVLAPolicy",
    "StepOutput",
    "TextEncoderConfig",
    "TokenizedInstruction",
    "WordTokenizer",
    "check_state_dict",
    "convert",
    "load_dinov2_weights",
    "load_policy_config",
    "load_tokenizer",
    "read_checkpoint",
    "select_device",
]
