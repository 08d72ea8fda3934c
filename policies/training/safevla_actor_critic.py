"""The SafeVLA model behind the training protocol (``ActorCritic``).

Acting: one ``EpisodeState`` (KV cache per branch) per environment slot, stepped one slot at a time, exactly
as ``SafeVLAPolicy.select_action`` runs at deployment. The caches of a batch share one length, which is why
slots are not batched together: their episodes start at different times.

Learning: ``forward(segments)`` pads the segments (grouped by instruction length, since the fusion attends to
every text token unmasked) to one length and runs ``SafeVLAModel.forward_sequence``,
a causal forward over [episode context + segment] without a cache; causality makes every position's output
equal to the cached step's (padding sits at the end, so it is never attended to), and only the segment's own
positions are returned. Time steps count from the episode start, previous actions are the taken actions
shifted by one with the start token first. The cost of exactness: an episode that spans rollouts is recomputed
from its start in each update (bounded by the 500-step episode length).

The frozen image encoder runs once per step in ``encode``; the buffer keeps its pooled features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from policies.configuration_safevla import SafeVLAConfig, load_policy_config
from policies.encoders.dinov2 import PooledDinoFeatures
from policies.modeling_safevla import EpisodeState, SafeVLAModel
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
    """See the module docstring. Only the summed cost: the SafeVLA cost critic has a single head."""

    recurrent = True
    has_unused_parameters = True  # the actor branch's own value head feeds no loss

    def __init__(self, config: SafeVLAConfig, model: SafeVLAModel, image_encoder: PooledDinoFeatures,
                 tokenizer: InstructionTokenizer) -> None:
        super().__init__()
        if not config.cost_critic:
            raise ConfigError(f"policy config {config.name!r} has no cost critic (cost_critic: false); "
                              "constrained training needs one")
        self.config = config
        self.model = model.eval()
        self.image_encoder = image_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.processor = ImageProcessor(config.image_encoder.image_height, config.image_encoder.image_width)
        self.num_actions, self.num_cost_heads = config.num_actions, 1
        self._episodes: list[EpisodeState | None] = []

    @classmethod
    def from_pretrained(cls, path: str | Path) -> SafeVLAActorCritic:
        """Start from a checkpoint (our directory, .pt, .ckpt) that includes the image encoder and tokenizer.

        Raises:
            PolicyLoadError: see ``SafeVLAPolicy.from_pretrained``.
            ConfigError: the checkpoint lacks an image encoder or a tokenizer.
        """
        policy = SafeVLAPolicy.from_pretrained(path, device="cpu", precision="fp32")
        if policy.image_encoder is None or policy.tokenizer is None:
            raise ConfigError(f"{path}: training needs a checkpoint with its image encoder and tokenizer "
                              "(our directory format written by save_pretrained)")
        return cls(policy.config, policy.model, policy.image_encoder, policy.tokenizer)

    @classmethod
    def from_scratch(cls, config_path: str | Path, seed: int) -> SafeVLAActorCritic:
        """A freshly initialised network of ``config_path`` with the simulator word vocabulary."""
        config = load_policy_config(config_path)
        torch.manual_seed(seed)
        model = SafeVLAModel(config)
        encoder = PooledDinoFeatures(config.image_encoder, config.pooled_grid)
        return cls(config, model, encoder, WordTokenizer.from_texts([]))

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
        if len(self._episodes) != num_slots:
            self._episodes = [None] * num_slots
        for slot in env_slots:
            self._episodes[slot] = None

    def act(self, observations: Sequence[Any], prev_actions: torch.Tensor, episode_steps: torch.Tensor,
            advance: bool = True) -> Heads:
        if len(self._episodes) != len(observations):
            self._episodes = [None] * len(observations)
        device = self._device()
        logits, values, costs = [], [], []
        for slot, obs in enumerate(observations):
            if self._episodes[slot] is None:
                ids = torch.tensor([obs.tokens], device=device)
                self._episodes[slot] = self.model.start_episode(ids, torch.ones_like(ids))
            episode = self._episodes[slot]
            lengths = {name: b.cache.length for name, b in episode.branches.items()}
            prev = int(prev_actions[slot])
            out = self.model.step(
                episode, {n: f[None].to(device) for n, f in obs.features.items()},
                torch.tensor([self.config.start_token if prev < 0 else prev], device=device),
                torch.tensor([obs.object_in_hand], device=device),
                torch.tensor([int(episode_steps[slot])], device=device))
            if not advance:  # positions past ``length`` are ignored and overwritten by the next step
                for name, branch in episode.branches.items():
                    branch.cache.length = lengths[name]
            logits.append(out.logits)
            values.append(out.reward_value)
            costs.append(out.cost_value)
        return Heads(torch.cat(logits), torch.cat(values), torch.cat(costs)[:, None])

    def forward(self, segments: Sequence[Segment]) -> Heads:
        # The fusion transformer attends to every text token without a mask, so padding an instruction would
        # change its outputs: segments run in groups of equal instruction length, then return in order.
        groups: dict[int, list[int]] = {}
        for i, seg in enumerate(segments):
            groups.setdefault(len(seg.observations[0].tokens), []).append(i)
        parts = {tuple(idx): self._forward_group([segments[i] for i in idx]) for idx in groups.values()}
        if len(parts) == 1:
            return next(iter(parts.values()))
        rows: list[tuple[int, int, int]] = []  # (segment index, part number, row within the part)
        for number, (idx, _) in enumerate(parts.items()):
            offset = 0
            for i in idx:
                rows += [(i, number, offset + r) for r in range(segments[i].steps)]
                offset += segments[i].steps
        rows.sort(key=lambda r: r[0])  # stable: steps of one segment keep their order
        heads = list(parts.values())
        return Heads(*(torch.stack([heads[n][field][r] for _, n, r in rows]) for field in range(3)))

    def _forward_group(self, segments: Sequence[Segment]) -> Heads:
        device = self._device()
        lengths = [len(s.observations) for s in segments]
        batch, steps = len(segments), max(lengths)
        input_ids = torch.tensor([s.observations[0].tokens for s in segments], dtype=torch.long)
        prev = torch.full((batch, steps), self.config.start_token, dtype=torch.long)
        in_hand = torch.zeros(batch, steps, dtype=torch.long)
        sample = segments[0].observations[0].features
        pooled = {n: torch.zeros((batch, steps) + tuple(f.shape)) for n, f in sample.items()}
        for b, seg in enumerate(segments):
            prev[b, 1:lengths[b]] = torch.tensor(list(seg.actions[:-1]), dtype=torch.long)
            in_hand[b, :lengths[b]] = torch.tensor([o.object_in_hand for o in seg.observations])
            for name in pooled:
                pooled[name][b, :lengths[b]] = torch.stack([o.features[name] for o in seg.observations])
        time_step = torch.arange(steps).expand(batch, steps)
        ids = input_ids.to(device)
        out = self.model.forward_sequence(ids, torch.ones_like(ids), {n: p.to(device) for n, p in pooled.items()},
                                          prev.to(device), in_hand.to(device), time_step.to(device))
        keep = torch.cat([torch.arange(b * steps + s.context, b * steps + lengths[b])
                          for b, s in enumerate(segments)]).to(device)
        cost = out.cost_value.reshape(-1)[keep]
        return Heads(out.logits.reshape(batch * steps, -1)[keep], out.reward_value.reshape(-1)[keep], cost[:, None])

    def export(self, directory: Path) -> Path:
        """Our checkpoint format (config.yaml + model.safetensors + image encoder + tokenizer)."""
        policy = SafeVLAPolicy(self.config, self.model, self.image_encoder, self.tokenizer, device=self._device(),
                               precision="fp32")
        return policy.save_pretrained(directory)
