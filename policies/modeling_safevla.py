"""The SafeVLA actor-critic network (``SafeDinoLLAMATxNavActorCriticSeparate`` of the original).

Structure and ``state_dict()`` keys equal the released ``safe_*.pt`` files: a root branch (actions from
``actor.linear``) plus two full copies, ``critic_tsfm`` (reward value from its ``critic.fc``) and
``c_critic_tsfm`` (cost value from its ``critic.fc``). Each branch has its own T5, fusion encoder, decoder
and KV cache, and all three advance once per step. One step of a branch:

    obs  = fusion(pooled nav, pooled manip, adapted T5 tokens)        # fusion-token output
    x    = obs + last_actions_embed[prev or start token 20] + object_in_hand_embed[flag] + sin/cos(time_step)
    h    = decoder(x, kv_cache)                                        # LLaMA blocks, RMSNorm, output Linear
    head = actor.linear(h) / critic.fc(h)

The DINOv2 image encoder is not part of this module (it is not in the checkpoint); it lives in the runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from policies.configuration_safevla import SafeVLAConfig
from policies.decoder import KVCache, LlamaDecoder, SlotKVCache
from policies.fusion import ObservationFusion

__all__ = [
    "BRANCH_ROLES",
    "EpisodeState",
    "PolicyBranch",
    "SafeVLAModel",
    "SinusoidalTimeEncoder",
    "StepOutput",
    "effective_prev_action",
]

#: Role of each branch prefix: root = actor, critic_tsfm = reward critic, c_critic_tsfm = cost critic.
BRANCH_ROLES: dict[str, str] = {"": "actor", "critic_tsfm": "reward_critic", "c_critic_tsfm": "cost_critic"}


def effective_prev_action(prev_actions: torch.Tensor, masks: torch.Tensor, num_actions: int) -> torch.Tensor:
    """The original's rule: where the episode mask is 0 (first step) use the start token ``num_actions``."""
    return torch.where(masks.view(prev_actions.shape) != 0, prev_actions, torch.full_like(prev_actions, num_actions))


class SinusoidalTimeEncoder(nn.Module):
    """Transformer sinusoid of the integer episode step; its only state is the ``div_term`` buffer."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("div_term", torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim)))

    def forward(self, time_step: torch.Tensor) -> torch.Tensor:
        """(...,) integer steps -> (..., dim) encoding (sin on even, cos on odd channels)."""
        angles = time_step.unsqueeze(-1) * self.div_term
        pe = torch.zeros(*time_step.shape, self.dim, device=time_step.device)
        pe[..., 0::2] = torch.sin(angles)
        pe[..., 1::2] = torch.cos(angles)
        return pe


class _LinearActorHead(nn.Module):
    def __init__(self, dim: int, actions: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class _LinearCriticHead(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).squeeze(-1)


@dataclass
class _BranchEpisode:
    text_tokens: torch.Tensor
    cache: KVCache | SlotKVCache
    text_padding: torch.Tensor | None = None  # (B, L) True past a row's instruction (slot states only)


@dataclass
class EpisodeState:
    """Inference state per branch: adapted text tokens and a KV cache.

    Two forms: an episode (a batch of episodes started together), from ``start_episode``; or a slot state
    from ``start_slots``, whose rows are environment slots each in its own episode (``begin_slot``), with
    instructions of their own lengths (padded; the fusion runs each length unpadded) and a ``SlotKVCache``.
    """

    branches: dict[str, _BranchEpisode] = field(default_factory=dict)
    restarts: int = 0  # times the cache filled up (max_steps) and history was dropped, as in the original


@dataclass(frozen=True)
class StepOutput:
    """One step's heads. Shapes: logits (B, actions); values (B,). cost_value is None for FLaRe models."""

    logits: torch.Tensor
    reward_value: torch.Tensor
    cost_value: torch.Tensor | None


class PolicyBranch(nn.Module):
    """One full network copy (the original's ``DinoLLAMATxNavActorCritic``)."""

    def __init__(self, cfg: SafeVLAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.visual_encoder = ObservationFusion(cfg)
        self.object_in_hand_embed = nn.Embedding(cfg.object_in_hand_rows, d)
        self.last_actions_embed = nn.Embedding(cfg.num_actions + 2, d, padding_idx=cfg.num_actions + 1)
        self.time_encoder = SinusoidalTimeEncoder(d)
        self.decoder = LlamaDecoder(d, cfg.decoder_layers, cfg.decoder_heads, cfg.decoder_ffn_hidden,
                                    cfg.decoder_norm_eps)
        self.actor = _LinearActorHead(d, cfg.num_actions)
        self.critic = _LinearCriticHead(d)

    def step_embedding(self, obs_embed: torch.Tensor, prev_action: torch.Tensor, object_in_hand: torch.Tensor,
                       time_step: torch.Tensor) -> torch.Tensor:
        """Decoder input: observation + previous-action + object-in-hand embeddings + time encoding."""
        joint = obs_embed + self.last_actions_embed(prev_action) + self.object_in_hand_embed(object_in_hand)
        return self.time_encoder(time_step) + joint


class SafeVLAModel(PolicyBranch):
    """Root branch (actor) plus ``critic_tsfm`` and, for SafeVLA, ``c_critic_tsfm``."""

    def __init__(self, cfg: SafeVLAConfig) -> None:
        super().__init__(cfg)
        self.critic_tsfm = PolicyBranch(cfg)
        if cfg.cost_critic:
            self.c_critic_tsfm = PolicyBranch(cfg)

    def branch(self, prefix: str) -> PolicyBranch:
        """The branch stored under ``prefix`` ('' is the root)."""
        return self if prefix == "" else getattr(self, prefix)

    def start_episode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EpisodeState:
        """Encode the instruction once per branch and allocate empty KV caches (batch = rows of input_ids)."""
        state = EpisodeState()
        device = input_ids.device
        for prefix in self.cfg.branch_names:
            branch = self.branch(prefix)
            tokens = branch.visual_encoder.encode_text(input_ids, attention_mask)
            cache = branch.decoder.new_cache(input_ids.shape[0], self.cfg.max_steps, device)
            state.branches[prefix] = _BranchEpisode(tokens, cache)
        return state

    def start_slots(self, slots: int, device: torch.device | str) -> EpisodeState:
        """A slot state for ``slots`` environments; each row is blank until ``begin_slot``."""
        state = EpisodeState()
        for prefix in self.cfg.branch_names:
            branch = self.branch(prefix)
            cache = branch.decoder.new_cache(slots, self.cfg.max_steps, device, per_row=True)
            state.branches[prefix] = _BranchEpisode(torch.zeros(slots, 0, self.cfg.d_model, device=device), cache,
                                                    torch.ones(slots, 0, dtype=torch.bool, device=device))
        return state

    def begin_slot(self, state: EpisodeState, slot: int, input_ids: torch.Tensor) -> None:
        """Row ``slot`` of a slot state starts an episode with instruction ``input_ids`` (1, L).

        Raises:
            ValueError: ``state`` is an episode, not a slot state.
        """
        length = input_ids.shape[1]
        for prefix in self.cfg.branch_names:
            episode = state.branches[prefix]
            if not isinstance(episode.cache, SlotKVCache) or episode.text_padding is None:
                raise ValueError("begin_slot needs a slot state (SafeVLAModel.start_slots)")
            tokens = self.branch(prefix).visual_encoder.encode_text(input_ids, torch.ones_like(input_ids))
            grow = length - episode.text_tokens.shape[1]
            if grow > 0:  # a longer instruction than any so far: pad every row to it
                episode.text_tokens = nn.functional.pad(episode.text_tokens, (0, 0, 0, grow))
                episode.text_padding = nn.functional.pad(episode.text_padding, (0, grow), value=True)
            episode.text_tokens[slot] = 0.0
            episode.text_tokens[slot, :length] = tokens[0]
            episode.text_padding[slot] = True
            episode.text_padding[slot, :length] = False
            episode.cache.lengths[slot] = 0

    def step(self, state: EpisodeState, pooled: dict[str, torch.Tensor], prev_action: torch.Tensor,
             object_in_hand: torch.Tensor, time_step: torch.Tensor,
             trace: dict[str, torch.Tensor] | None = None) -> StepOutput:
        """Advance every branch by one step (batch B): pooled grids (B,C,r,c), ints (B,) -> heads.

        ``prev_action`` is already resolved (start token at an episode's first step, see
        ``effective_prev_action``). When the caches are full (``max_steps``) they restart empty, as the
        original's step counter does (in a slot state, row by row). ``trace``, when given, receives the
        intermediate tensors by '<role>.<name>' (obs_embeds, decoder_in, decoder_out, actor_logits_raw,
        critic_fc_out).
        """
        outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for prefix in self.cfg.branch_names:
            branch, episode = self.branch(prefix), state.branches[prefix]
            if episode.cache.restart_if_full():
                state.restarts += prefix == ""
            obs = branch.visual_encoder(pooled, episode.text_tokens, episode.text_padding)
            x = branch.step_embedding(obs, prev_action, object_in_hand, time_step)
            beliefs = branch.decoder(x.unsqueeze(1), episode.cache)[:, 0]
            logits, value = branch.actor(beliefs), branch.critic(beliefs)
            outputs[prefix] = (logits, value)
            if trace is not None:
                role = BRANCH_ROLES[prefix]
                for name, tensor in (("obs_embeds", obs), ("decoder_in", x), ("decoder_out", beliefs),
                                     ("actor_logits_raw", logits), ("critic_fc_out", value)):
                    trace[f"{role}.{name}"] = tensor.detach()
        cost = outputs["c_critic_tsfm"][1] if self.cfg.cost_critic else None
        return StepOutput(outputs[""][0], outputs["critic_tsfm"][1], cost)

    def forward_sequence(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         pooled: dict[str, torch.Tensor], prev_action: torch.Tensor, object_in_hand: torch.Tensor,
                         time_step: torch.Tensor, real_steps: torch.Tensor | None = None,
                         frozen_steps: torch.Tensor | None = None) -> StepOutput:
        """Whole episodes at once without a cache (the training path): pooled (B,T,C,r,c), ints (B,T).

        Rows may hold instructions of different lengths, padded at the end (``attention_mask`` 0 there): the
        fusion then runs each instruction length unpadded, as a slot state does. ``real_steps`` (B,) counts a
        row's steps before its padding (default: all T); the causal decoder never attends from a real step to a
        padding step, so padding observations are not encoded at all (a zero embedding; their outputs are unused).
        ``frozen_steps`` (B,) counts a row's first steps whose observation embeddings carry no gradient (default:
        none): an episode's context from earlier rollouts, which the loss does not score. Their values are the
        same; only the gradient into the fusion through them is cut, as recurrent PPO cuts backpropagation at
        the rollout boundary, and the fusion (the costliest part, once per step and branch) then runs
        backwards over the trained steps alone.
        Returns logits (B,T,actions) and values (B,T); equal to T cached ``step`` calls up to float noise.
        """
        batch, steps = prev_action.shape
        position = torch.arange(steps, device=prev_action.device).expand(batch, steps)
        real = position < (steps if real_steps is None else real_steps[:, None])
        frozen = position < (0 if frozen_steps is None else frozen_steps[:, None])
        encoded = [((real & frozen).flatten().nonzero().flatten(), False),
                   ((real & ~frozen).flatten().nonzero().flatten(), torch.is_grad_enabled())]
        flat = {name: grid.flatten(0, 1) for name, grid in pooled.items()}
        text_padding = attention_mask == 0
        outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for prefix in self.cfg.branch_names:
            branch = self.branch(prefix)
            text = branch.visual_encoder.encode_text(input_ids, attention_mask)
            obs = text.new_zeros(batch * steps, self.cfg.d_model)
            for rows, grad in encoded:
                if rows.numel():
                    with torch.set_grad_enabled(grad):
                        part = branch.visual_encoder({n: g[rows] for n, g in flat.items()}, text[rows // steps],
                                                     text_padding[rows // steps])
                    obs = obs.index_put((rows,), part)
            x = branch.step_embedding(obs.view(batch, steps, -1), prev_action, object_in_hand, time_step)
            beliefs = branch.decoder(x)
            outputs[prefix] = (branch.actor(beliefs), branch.critic(beliefs))
        cost = outputs["c_critic_tsfm"][1] if self.cfg.cost_critic else None
        return StepOutput(outputs[""][0], outputs["critic_tsfm"][1], cost)
