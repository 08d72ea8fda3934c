"""``SafeVLAPolicy``: the deployable policy (LeRobot-style ``from_pretrained`` / ``reset`` / ``select_action``).

Per episode the instruction is encoded once (T5 + adapter, per branch) and every step costs O(1) model work
plus attention over the cached history (KV cache), instead of re-running the whole history. Inference runs
under ``torch.inference_mode`` in eval mode, fp32 on CPU (bf16 optional) and bf16/fp16 autocast on CUDA.

Differences from the original on purpose: no evaluation-time augmentation; the previous action fed back is
the one actually chosen (the original feeds a *sampled* action even in greedy mode) or the one the caller
reports with ``override_last_action`` (e.g. after a safety shield replaced it); the step counter restarts
with every ``reset()`` instead of carrying over between episodes (the history seen is identical, because
the original masks earlier episodes out; only its 500-step cache wrap point differs).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from policies.checkpoints import (
    TOKENIZER_FILE,
    check_state_dict,
    load_dinov2_weights,
    read_checkpoint,
    write_pretrained,
)
from policies.configuration_safevla import SafeVLAConfig
from policies.encoders.dinov2 import PooledDinoFeatures
from policies.modeling_safevla import EpisodeState, SafeVLAModel
from policies.processor_safevla import (
    CLIP_MEAN,
    CLIP_STD,
    ImageProcessor,
    InstructionTokenizer,
    WordTokenizer,
    load_tokenizer,
)
from safevla_node.errors import PolicyLoadError

__all__ = ["PolicyObservation", "PolicyOutput", "Precision", "SafeVLAPolicy", "select_device"]

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]


def select_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class PolicyObservation:
    """One step's inputs.

    Attributes:
        instruction: the goal text, or pre-tokenised T5 ids (EOS included) when no tokenizer is available.
        nav_rgb: navigation camera, uint8 (H, W, 3) RGB; or give ``nav_features``.
        manip_rgb: manipulation camera, uint8 (H, W, 3) RGB; or give ``manip_features``.
        object_in_hand: whether the gripper holds an object.
        nav_features: precomputed pooled DINOv2 features (C, rows, cols), skipping the image encoder.
        manip_features: same for the manipulation camera.
    """

    instruction: str | Sequence[int]
    nav_rgb: np.ndarray | None = None
    manip_rgb: np.ndarray | None = None
    object_in_hand: bool = False
    nav_features: np.ndarray | None = None
    manip_features: np.ndarray | None = None


@dataclass(frozen=True)
class PolicyOutput:
    """The chosen action and the heads behind it.

    Attributes:
        action_index: index into ``safevla_node.actions.ACTIONS``.
        probabilities: (num_actions,) float32 after masking; masked actions are exactly 0.
        logits: (num_actions,) raw actor logits (before masking).
        reward_value: reward critic's value estimate.
        cost_value: cost critic's value estimate (None for FLaRe models without a cost critic).
    """

    action_index: int
    probabilities: np.ndarray
    logits: np.ndarray
    reward_value: float
    cost_value: float | None


class SafeVLAPolicy:
    """A loaded SafeVLA network with its image encoder, tokenizer and per-episode state."""

    def __init__(self, config: SafeVLAConfig, model: SafeVLAModel, image_encoder: PooledDinoFeatures | None = None,
                 tokenizer: InstructionTokenizer | None = None, device: str | torch.device = "auto",
                 precision: Precision = "auto", compile: bool = False) -> None:
        self.config = config
        self.device = select_device(device)
        self.precision = self._resolve_precision(precision)
        self.model = model.to(self.device).eval()
        self.image_encoder = image_encoder.to(self.device).eval() if image_encoder is not None else None
        self.tokenizer = tokenizer
        self.processor = ImageProcessor(config.image_encoder.image_height, config.image_encoder.image_width)
        if compile:
            for prefix in config.branch_names:
                branch = self.model.branch(prefix)
                branch.visual_encoder.fusion_xformer.compile(dynamic=False)
            if self.image_encoder is not None:
                self.image_encoder.compile(dynamic=False)
        self._episode: EpisodeState | None = None
        self._instruction: tuple[int, ...] | None = None
        self._steps = 0
        self._last_action: int | None = None

    def _resolve_precision(self, precision: Precision) -> torch.dtype | None:
        if precision == "auto":
            if self.device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return None
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError("precision='fp16' is for CUDA; use 'bf16' or 'fp32' on CPU")
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "auto", precision: Precision = "auto",
                        compile: bool = False, config: SafeVLAConfig | None = None,
                        dinov2_path: str | Path | None = None, tokenizer_path: str | Path | None = None,
                        trust_pickle: bool = False) -> SafeVLAPolicy:
        """Load our directory format, an allenact ``.pt`` or a Lightning ``.ckpt``, strictly.

        ``config`` overrides (or, for .pt/.ckpt, supplies; default full SafeVLA) the network sizes. The image
        encoder comes from the checkpoint or ``dinov2_path``; without one, only precomputed features work.

        Raises:
            PolicyLoadError: missing files, unreadable content, or keys/shapes that do not fit the config.
        """
        checkpoint = read_checkpoint(path, config, trust_pickle)
        config = config or checkpoint.config or cls._infer_config(checkpoint.policy_state)
        model = SafeVLAModel(config)
        check_state_dict({k: v.shape for k, v in model.state_dict().items()}, checkpoint.policy_state, str(path))
        model.load_state_dict(checkpoint.policy_state, strict=True)
        image_state = load_dinov2_weights(dinov2_path) if dinov2_path is not None else checkpoint.image_state
        image_encoder = None
        if image_state is not None:
            image_encoder = PooledDinoFeatures(config.image_encoder, config.pooled_grid)
            expected = {k: v.shape for k, v in image_encoder.model.state_dict().items()}
            check_state_dict(expected, image_state, str(dinov2_path or path) + " (image encoder)")
            image_encoder.model.load_state_dict(image_state, strict=True)
        tokenizer = None
        if tokenizer_path is not None:
            tokenizer = load_tokenizer(tokenizer_path)
        elif checkpoint.directory is not None and (checkpoint.directory / TOKENIZER_FILE).is_file():
            tokenizer = load_tokenizer(checkpoint.directory / TOKENIZER_FILE)
        return cls(config, model, image_encoder, tokenizer, device, precision, compile)

    @staticmethod
    def _infer_config(policy_state: dict[str, torch.Tensor]) -> SafeVLAConfig:
        has_cost = any(k.startswith("c_critic_tsfm.") for k in policy_state)
        return SafeVLAConfig() if has_cost else SafeVLAConfig(name="flare", cost_critic=False)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write config.yaml, model.safetensors (+ image encoder), preprocessor.json and tokenizer.json."""
        image_state = self.image_encoder.model.state_dict() if self.image_encoder is not None else None
        cfg = self.config.image_encoder
        preprocessor = {"height": cfg.image_height, "width": cfg.image_width, "crop_width": cfg.crop_width,
                        "mean": list(CLIP_MEAN), "std": list(CLIP_STD)}
        directory = write_pretrained(path, self.config, self.model.state_dict(), image_state, preprocessor)
        if isinstance(self.tokenizer, WordTokenizer):
            self.tokenizer.save(directory / TOKENIZER_FILE)
        return directory

    # ------------------------------------------------------------------ episode
    def reset(self) -> None:
        """Start a new episode: drop the KV caches, the cached instruction and the previous action."""
        self._episode = None
        self._instruction = None
        self._steps = 0
        self._last_action = None

    @property
    def steps(self) -> int:
        """Steps taken since ``reset()``."""
        return self._steps

    def override_last_action(self, action_index: int) -> None:
        """Report the action actually executed (e.g. a shield replaced the policy's); it is fed back next step.

        Raises:
            ValueError: out of range, or no step taken yet.
        """
        if self._steps == 0:
            raise ValueError("override_last_action before any select_action in this episode")
        if not 0 <= action_index < self.config.num_actions:
            raise ValueError(f"action_index={action_index} is out of range [0, {self.config.num_actions})")
        self._last_action = action_index

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.precision is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision)

    def _tokens(self, instruction: str | Sequence[int]) -> tuple[int, ...]:
        if isinstance(instruction, str):
            if self.tokenizer is None:
                raise ValueError("this policy has no tokenizer: pass the instruction as token ids, or load a "
                                 "tokenizer (tokenizer_path=...)")
            return self.tokenizer(instruction).input_ids
        ids = tuple(int(i) for i in instruction)
        if not ids or min(ids) < 0 or max(ids) >= self.config.text_encoder.vocab_size:
            raise ValueError(f"instruction ids must be non-empty and in [0, {self.config.text_encoder.vocab_size})")
        return ids

    def _pooled(self, observation: PolicyObservation) -> dict[str, torch.Tensor]:
        names = self.config.camera_names
        features = (observation.nav_features, observation.manip_features)[: len(names)]
        frames = (observation.nav_rgb, observation.manip_rgb)[: len(names)]
        if all(f is not None for f in features):
            return {n: torch.as_tensor(np.asarray(f), dtype=torch.float32, device=self.device)[None]
                    for n, f in zip(names, features)}
        if any(f is None for f in frames):
            raise ValueError(f"observation needs {len(names)} camera frames (nav_rgb, manip_rgb) or all pooled "
                             "features")
        if self.image_encoder is None:
            raise PolicyLoadError("no image encoder loaded: pass dinov2_path= to from_pretrained, or give "
                                  "precomputed nav_features/manip_features")
        batch = torch.stack([self.processor(frame) for frame in frames]).to(self.device)
        pooled = self.image_encoder(batch).float()
        return {n: pooled[i:i + 1] for i, n in enumerate(names)}

    def _begin(self, tokens: tuple[int, ...]) -> EpisodeState:
        ids = torch.tensor([tokens], device=self.device)
        self._instruction = tokens
        return self.model.start_episode(ids, torch.ones_like(ids))

    def select_action(self, observation: PolicyObservation, action_mask: np.ndarray | Sequence[bool] | None = None,
                      deterministic: bool = True, generator: torch.Generator | None = None) -> PolicyOutput:
        """One step: encode, decode with the KV cache, mask, choose.

        ``action_mask`` (num_actions,) bool: True = allowed; disallowed actions get probability exactly 0.

        Raises:
            ValueError: malformed observation or mask, all actions masked, or the instruction changed
                without ``reset()``.
        """
        allowed = self._allowed(action_mask)
        tokens = self._tokens(observation.instruction)
        if self._instruction is not None and tokens != self._instruction:
            raise ValueError("the instruction changed within an episode; call reset() first")
        with torch.inference_mode(), self._autocast():
            if self._episode is None:
                self._episode = self._begin(tokens)
            prev = self.config.start_token if self._last_action is None else self._last_action
            out = self.model.step(
                self._episode, self._pooled(observation),
                torch.tensor([prev], device=self.device),
                torch.tensor([int(bool(observation.object_in_hand))], device=self.device),
                torch.tensor([self._steps], device=self.device))
        logits = out.logits[0].float().cpu()
        masked = logits.masked_fill(~allowed, float("-inf"))
        probabilities = torch.softmax(masked, dim=-1)
        if deterministic:
            action = int(masked.argmax())
        else:
            action = int(torch.multinomial(probabilities, 1, generator=generator))
        self._steps += 1
        self._last_action = action
        cost = None if out.cost_value is None else float(out.cost_value[0])
        return PolicyOutput(action, probabilities.numpy(), logits.numpy(), float(out.reward_value[0]), cost)

    def _allowed(self, action_mask: np.ndarray | Sequence[bool] | None) -> torch.Tensor:
        n = self.config.num_actions
        if action_mask is None:
            return torch.ones(n, dtype=torch.bool)
        mask = np.asarray(action_mask)
        if mask.shape != (n,) or mask.dtype != np.bool_:
            raise ValueError(f"action_mask must be a bool array of shape ({n},), got {mask.dtype} {mask.shape}")
        if not mask.any():
            raise ValueError("action_mask disallows every action; at least one must remain (e.g. 'end')")
        return torch.from_numpy(mask.copy())
