"""The SafeVLA model behind the training protocol (``ActorCritic``).

Acting: every environment slot in one batched forward per step, through a slot state
(``SafeVLAModel.start_slots``): each row holds its own episode's KV cache at its own length and its own
instruction (padded; the fusion runs each instruction length unpadded). The heads equal what
``SafeVLAPolicy.select_action`` computes at deployment, one episode at a time, up to float noise (a test
holds them to it); 14 slots act 1.6x faster than one forward per slot on a CPU (``bench/bench_train.py``),
more where batch-1 forwards are bound by kernel launches.

Learning: ``forward(segments)`` pads the segments and their instructions to one length each and runs
``SafeVLAModel.forward_sequence`` (whose fusion runs each instruction length unpadded, as acting does),
a causal forward over [episode context + segment] without a cache; causality makes every position's output
equal to the cached step's (padding sits at the end, so it is never attended to), and only the segment's own
positions are returned. Time steps count from the episode start, previous actions are the taken actions
shifted by one with the start token first. An episode that spans rollouts runs from its start in each update
(bounded by the 500-step episode length), but its context steps are encoded without gradient and the padding
not at all: the values are exact, and the gradient stops at the rollout boundary as in recurrent PPO.

The frozen image encoder runs once per step in ``encode``; the buffer keeps its pooled features.

Constraints per cost category: the cost branch's value head (``c_critic_tsfm.critic.fc``) gets one output per
category, each row starting as the checkpoint's row divided by the number of categories, so the category values
start out summing to the checkpoint's cost value and each critic then learns its own share. ``export`` folds
them back into the single output of the checkpoint format (their sum: the total cost value, by linearity), so
the policy node loads a fine-tuned checkpoint unchanged whichever the mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from policies.configuration_safevla import SafeVLAConfig, load_policy_config
from policies.encoders.dinov2 import PooledDinoFeatures
from policies.modeling_safevla import EpisodeState, SafeVLAModel, effective_prev_action
from policies.processor_safevla import ImageProcessor, InstructionTokenizer, WordTokenizer
from policies.runtime import SafeVLAPolicy
from policies.training.actor_critic import ActorCritic, Heads, Segment
from safevla_node.errors import ConfigError

__all__ = ["EncodedStep", "SafeVLAActorCritic"]


@dataclass(frozen=True)
class EncodedStep:
    """One stored step: pooled features per camera (C, rows, cols), instruction ids, gripper flag."""

    features: dict[str, torch.Tensor]
    tokens: tuple[int, ...]
    object_in_hand: int


class SafeVLAActorCritic(ActorCritic):
    """See the module docstring; ``num_cost_heads`` is 1 (the summed cost) or the number of cost categories."""

    recurrent = True
    has_unused_parameters = True  # the actor branch's own value head feeds no loss

    def __init__(self, config: SafeVLAConfig, model: SafeVLAModel, image_encoder: PooledDinoFeatures,
                 tokenizer: InstructionTokenizer, num_cost_heads: int = 1) -> None:
        super().__init__()
        if not config.cost_critic:
            raise ConfigError(f"policy config {config.name!r} has no cost critic (cost_critic: false); "
                              "constrained training needs one")
        self.config = config
        self.model = model.eval()
        self.image_encoder = image_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.processor = ImageProcessor(config.image_encoder.image_height, config.image_encoder.image_width)
        self.num_actions, self.num_cost_heads = config.num_actions, num_cost_heads
        if num_cost_heads > 1:
            model.c_critic_tsfm.critic.fc = _split_head(model.c_critic_tsfm.critic.fc, num_cost_heads)
        self._slots: EpisodeState | None = None
        self._beginning: set[int] = set()  # slots whose episode starts at the next ``act`` (its instruction)

    @classmethod
    def from_pretrained(cls, path: str | Path, num_cost_heads: int = 1) -> SafeVLAActorCritic:
        """Start from a checkpoint (our directory, .pt, .ckpt) that includes the image encoder and tokenizer.

        Raises:
            PolicyLoadError: see ``SafeVLAPolicy.from_pretrained``.
            ConfigError: the checkpoint lacks an image encoder or a tokenizer.
        """
        policy = SafeVLAPolicy.from_pretrained(path, device="cpu", precision="fp32")
        if policy.image_encoder is None or policy.tokenizer is None:
            raise ConfigError(f"{path}: training needs a checkpoint with its image encoder and tokenizer "
                              "(our directory format written by save_pretrained)")
        return cls(policy.config, policy.model, policy.image_encoder, policy.tokenizer, num_cost_heads)

    @classmethod
    def from_scratch(cls, config_path: str | Path, seed: int, num_cost_heads: int = 1) -> SafeVLAActorCritic:
        """A freshly initialised network of ``config_path`` with the simulator word vocabulary."""
        config = load_policy_config(config_path)
        torch.manual_seed(seed)
        model = SafeVLAModel(config)
        encoder = PooledDinoFeatures(config.image_encoder, config.pooled_grid)
        return cls(config, model, encoder, WordTokenizer.from_texts([]), num_cost_heads)

    def train(self, mode: bool = True) -> SafeVLAActorCritic:
        """Stays in eval mode: the fusion layers' dropout (0.1) would make the rollout's and the update's
        log-probabilities differ by noise, and the PPO ratio must compare one deterministic function.
        Gradients flow all the same. (The original fine-tunes with dropout on.)"""
        super().train(False)
        return self

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, raw_observations: Sequence[Any]) -> list[Any]:
        names = self.config.camera_names
        frames = [frame for o in raw_observations for frame in (o.nav_rgb, o.manip_rgb)[: len(names)]]
        device = self._device()
        with torch.no_grad():
            pooled = self.image_encoder(torch.stack([self.processor(f) for f in frames]).to(device)).float().cpu()
        pooled = pooled.view(len(raw_observations), len(names), *pooled.shape[1:])
        return [EncodedStep({n: pooled[i, k] for k, n in enumerate(names)},
                            tuple(self.tokenizer(o.instruction).input_ids), int(bool(o.object_in_hand)))
                for i, o in enumerate(raw_observations)]

    def begin_episodes(self, env_slots: Sequence[int], num_slots: int) -> None:
        text = None if self._slots is None else self._slots.branches[""].text_tokens
        if text is None or text.shape[0] != num_slots or text.device != self._device():  # new, resized or moved
            self._slots = self.model.start_slots(num_slots, self._device())
            self._beginning = set(range(num_slots))
        self._beginning.update(env_slots)

    def act(self, observations: Sequence[Any], prev_actions: torch.Tensor, episode_steps: torch.Tensor,
            advance: bool = True) -> Heads:
        device = self._device()
        self.begin_episodes((), len(observations))
        slots = self._slots
        assert slots is not None
        for slot in sorted(self._beginning):
            self.model.begin_slot(slots, slot, torch.tensor([observations[slot].tokens], device=device))
        self._beginning.clear()
        lengths = {name: b.cache.lengths.clone() for name, b in slots.branches.items()}
        pooled = {n: torch.stack([o.features[n] for o in observations]).to(device) for n in self.config.camera_names}
        prev = effective_prev_action(prev_actions, prev_actions >= 0, self.config.num_actions)
        out = self.model.step(slots, pooled, prev.to(device),
                              torch.tensor([o.object_in_hand for o in observations], device=device),
                              episode_steps.to(device))
        if not advance:  # positions past a row's length are ignored and overwritten by its next step
            for name, branch in slots.branches.items():
                branch.cache.lengths.copy_(lengths[name])
        return Heads(out.logits, out.reward_value, out.cost_value.reshape(len(observations), -1))

    def forward(self, segments: Sequence[Segment]) -> Heads:
        out = self.model.forward_sequence(**self.sequence_inputs(segments))
        steps = out.logits.shape[1]
        keep = torch.cat([torch.arange(b * steps + s.context, b * steps + len(s.observations))
                          for b, s in enumerate(segments)]).to(out.logits.device)
        return Heads(out.logits.reshape(-1, out.logits.shape[-1])[keep], out.reward_value.reshape(-1)[keep],
                     out.cost_value.reshape(-1, self.num_cost_heads)[keep])

    def sequence_inputs(self, segments: Sequence[Segment]) -> dict[str, Any]:
        """The keyword arguments of ``SafeVLAModel.forward_sequence`` for ``segments``, padded, on the device."""
        lengths = [len(s.observations) for s in segments]
        batch, steps = len(segments), max(lengths)
        tokens = [s.observations[0].tokens for s in segments]
        input_ids = torch.zeros(batch, max(map(len, tokens)), dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        prev = torch.full((batch, steps), self.config.start_token, dtype=torch.long)
        in_hand = torch.zeros(batch, steps, dtype=torch.long)
        sample = segments[0].observations[0].features
        pooled = {n: torch.zeros((batch, steps) + tuple(f.shape)) for n, f in sample.items()}
        for b, seg in enumerate(segments):
            input_ids[b, :len(tokens[b])] = torch.tensor(tokens[b], dtype=torch.long)
            attention_mask[b, :len(tokens[b])] = 1
            prev[b, 1:lengths[b]] = torch.tensor(list(seg.actions[:-1]), dtype=torch.long)
            in_hand[b, :lengths[b]] = torch.tensor([o.object_in_hand for o in seg.observations])
            for name in pooled:
                pooled[name][b, :lengths[b]] = torch.stack([o.features[name] for o in seg.observations])
        device = self._device()
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device),
                "pooled": {n: p.to(device) for n, p in pooled.items()}, "prev_action": prev.to(device),
                "object_in_hand": in_hand.to(device),
                "time_step": torch.arange(steps, device=device).expand(batch, steps),
                "real_steps": torch.tensor(lengths, device=device),
                "frozen_steps": torch.tensor([s.context for s in segments], device=device)}

    def export(self, directory: Path) -> Path:
        """Our checkpoint format (config.yaml + model.safetensors + image encoder + tokenizer), per-category cost
        heads folded into the format's single one."""
        critic = self.model.c_critic_tsfm.critic
        split = critic.fc
        if self.num_cost_heads > 1:  # swapped in for the save only: no copy of the whole network
            critic.fc = _fold_head(split)
        try:
            policy = SafeVLAPolicy(self.config, self.model, self.image_encoder, self.tokenizer,
                                   device=self._device(), precision="fp32")
            return policy.save_pretrained(directory)
        finally:
            critic.fc = split


def _split_head(head: nn.Linear, parts: int) -> nn.Linear:
    """A linear layer with ``parts`` outputs, each ``head`` / ``parts``: their sum is ``head``'s output."""
    split = nn.Linear(head.in_features, parts, device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        split.weight.copy_(head.weight.expand(parts, -1) / parts)
        split.bias.copy_(head.bias.expand(parts) / parts)
    return split


def _fold_head(head: nn.Linear) -> nn.Linear:
    """The one-output layer whose output is the sum of ``head``'s outputs."""
    folded = nn.Linear(head.in_features, 1, device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(head.weight.sum(0, keepdim=True))
        folded.bias.copy_(head.bias.sum().reshape(1))
    return folded
