"""Teacher-forced behaviour cloning of the tiny SafeVLA (``python -m policies.bc train``).

What is trained: the actor branch (fusion encoder, decoder, embeddings, actor head) by cross-entropy
against the expert's labels over whole episodes at once, the causal decoder seeing each episode's real
history (previous executed actions, object-in-hand, time step), exactly as the runtime feeds it step by step.

Choices made for a 2-core CPU budget, on purpose:
  * The image encoder stays at its seeded initialisation and is frozen, as DINOv2 is in SafeVLA; its pooled
    features are computed once per dataset and cached under ``DATA/features/<encoder hash>/``.
  * Only the actor branch runs during training. The reward and cost critic branches, which BC has no labels
    for, are set to copies of the trained actor branch with zero value heads at save time, the original's
    IL -> RL initialisation (see ``policies.checkpoints.lightning_to_policy_state``).
  * Dropout is off (the fusion encoder's only stochastic part), so a run is a pure function of its seed
    and ``--resume`` continues bit for bit where the last state checkpoint left off.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from policies.bc.configuration_bc import TrainConfig
from policies.bc.dataset import list_shards, read_episode
from policies.configuration_safevla import SafeVLAConfig, load_policy_config
from policies.encoders.dinov2 import PooledDinoFeatures
from policies.modeling_safevla import SafeVLAModel
from policies.processor_safevla import ImageProcessor, WordTokenizer
from policies.runtime import SafeVLAPolicy
from policies.synthetic import state_dict_sha256
from safevla_node.config import to_mapping
from safevla_node.errors import ConfigError

__all__ = ["BCEpisode", "TrainResult", "actor_logits", "batch_schedule", "copy_actor_into_critics",
           "instruction_tokenizer", "load_bc_episodes", "train"]

logger = logging.getLogger(__name__)

STATE_FILE = "last.pt"
TRAINING_FILE = "training.json"
_FEATURE_BATCH = 32


@dataclass(frozen=True)
class BCEpisode:
    """One episode ready for training: cached camera features and the step inputs and labels.

    Attributes:
        name: shard file name.
        seed: the episode's scene seed.
        input_ids: instruction token ids (EOS included).
        features: (T, cameras, C, rows, cols) pooled image features.
        prev_action, object_in_hand, labels: (T,) int64.
    """

    name: str
    seed: int
    input_ids: torch.Tensor
    features: torch.Tensor
    prev_action: torch.Tensor
    object_in_hand: torch.Tensor
    labels: torch.Tensor

    @property
    def steps(self) -> int:
        """Episode length."""
        return len(self.labels)


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run ended: optimisation steps, last logged loss and accuracy, the saved policy."""

    steps: int
    loss: float
    accuracy: float
    out: Path


def instruction_tokenizer(instructions: Sequence[str]) -> WordTokenizer:
    """Word vocabulary over every object and furniture name the simulator can put in an instruction, plus
    the words of ``instructions``, so held-out instructions never meet an unknown word."""
    from sim_bridge.homegen.catalog import FURNITURE, ITEMS, words

    names = [words(t) for t in (*ITEMS, *FURNITURE)]
    return WordTokenizer.from_texts([*names, "bring the to", *instructions])


def actor_logits(model: SafeVLAModel, episodes: Sequence[BCEpisode],
                 camera_names: Sequence[str]) -> torch.Tensor:
    """Actor logits (B, T_max, actions) of the root branch for a batch of whole episodes.

    The same computation as ``SafeVLAModel.forward_sequence(...).logits`` (tested equal), restricted to the
    actor branch, with each episode's fusion run on its own unpadded instruction and its real steps only;
    the causal decoder then runs over the padded batch (padding sits after every real step, so it is never
    attended to by one).
    """
    cfg = model.cfg
    longest = max(e.steps for e in episodes)
    observed = []
    for episode in episodes:
        ids = episode.input_ids[None]
        text = model.visual_encoder.encode_text(ids, torch.ones_like(ids)).expand(episode.steps, -1, -1)
        pooled = {name: episode.features[:, k] for k, name in enumerate(camera_names)}
        obs = model.visual_encoder(pooled, text)
        observed.append(F.pad(obs, (0, 0, 0, longest - episode.steps)))
    pad = cfg.num_actions + 1  # the previous-action embedding's padding row

    def padded(values: list[torch.Tensor], fill: int) -> torch.Tensor:
        return torch.stack([F.pad(v, (0, longest - len(v)), value=fill) for v in values])

    prev = padded([e.prev_action for e in episodes], pad)
    hand = padded([e.object_in_hand for e in episodes], 0)
    time_step = torch.arange(longest).expand(len(episodes), -1)
    x = model.step_embedding(torch.stack(observed), prev, hand, time_step)
    return model.actor(model.decoder(x))


def copy_actor_into_critics(model: SafeVLAModel) -> None:
    """Give every critic branch the actor branch's weights and a zero value head (IL -> RL start)."""
    critics = tuple(p for p in model.cfg.branch_names if p)
    root = {k: v for k, v in model.state_dict().items() if not k.startswith(tuple(f"{p}." for p in critics))}
    with torch.no_grad():
        for prefix in critics:
            branch = model.branch(prefix)
            branch.load_state_dict(root, strict=True)
            branch.critic.fc.weight.zero_()
            branch.critic.fc.bias.zero_()


def batch_schedule(lengths: Sequence[int], batch: int, seed: int, epoch: int) -> list[list[int]]:
    """Episode indices of each batch of ``epoch``: shuffled, length-sorted within windows of 4 batches (little
    padding), batches in random order; a pure function of its arguments."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = 4 * batch
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window].tolist(), key=lambda i: lengths[i])
        batches += [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
    return [batches[i] for i in rng.permutation(len(batches))]


# --- data ------------------------------------------------------------------------------------------------


def _encoder_features(encoder: PooledDinoFeatures, processor: ImageProcessor,
                      frames: np.ndarray) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for start in range(0, len(frames), _FEATURE_BATCH):
            batch = torch.stack([processor(f) for f in frames[start:start + _FEATURE_BATCH]])
            out.append(encoder(batch).float())
    return torch.cat(out)


def load_bc_episodes(shards: Sequence[Path], encoder: PooledDinoFeatures, cfg: SafeVLAConfig,
                   tokenizer: WordTokenizer, cache: Path) -> list[BCEpisode]:
    """Shards -> BCEpisodes, computing (or reading from ``cache``) the frozen encoder's pooled features."""
    processor = ImageProcessor(cfg.image_encoder.image_height, cfg.image_encoder.image_width)
    cache.mkdir(parents=True, exist_ok=True)
    episodes: list[BCEpisode] = []
    start = time.perf_counter()
    computed = 0
    for index, shard in enumerate(shards, 1):
        cached = cache / (shard.stem + ".safetensors")
        data = read_episode(shard, images=not cached.is_file())
        if cached.is_file():
            features = load_file(str(cached))["features"]
        else:
            assert data.nav_rgb is not None and data.manip_rgb is not None
            cams = [_encoder_features(encoder, processor, f) for f in (data.nav_rgb, data.manip_rgb)]
            features = torch.stack(cams[: len(cfg.camera_names)], dim=1)
            tmp = cached.with_name(cached.name + ".tmp")
            save_file({"features": features.contiguous()}, str(tmp))
            os.replace(tmp, cached)
            computed += 1
        episodes.append(BCEpisode(
            shard.name, int(data.meta["seed"]), torch.tensor(tokenizer(data.instruction).input_ids), features,
            torch.from_numpy(data.prev_action.astype(np.int64)),
            torch.from_numpy(data.object_in_hand.astype(np.int64)),
            torch.from_numpy(data.expert_action.astype(np.int64)),
        ))
        if index % 25 == 0 or index == len(shards):
            elapsed = time.perf_counter() - start
            logger.info("features: %d/%d episodes (%d computed, rest cached) %.0f s, ETA %.0f s", index,
                        len(shards), computed, elapsed, elapsed / index * (len(shards) - index))
    return episodes


def _seed_of(shard: Path) -> int:
    """The scene seed in a shard name (``<task>-<seed>.npz``)."""
    return int(shard.stem.rsplit("-", 1)[1])


# --- training state ----------------------------------------------------------------------------------------


def _learning_rate(config: TrainConfig, step: int, total: int) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def _fingerprint(config: TrainConfig, episodes: Sequence[BCEpisode]) -> dict[str, object]:
    return {"config": to_mapping(config), "episodes": [[e.name, e.steps] for e in episodes]}


def _save_state(path: Path, step: int, model: SafeVLAModel, encoder: PooledDinoFeatures,
                optimizer: torch.optim.Optimizer, fingerprint: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "model": model.state_dict(), "image_encoder": encoder.model.state_dict(),
                "optimizer": optimizer.state_dict(), "fingerprint": fingerprint}, tmp)
    os.replace(tmp, path)


def _load_state(path: Path, model: SafeVLAModel, encoder: PooledDinoFeatures,
                optimizer: torch.optim.Optimizer, fingerprint: dict[str, object]) -> int:
    if not path.is_file():
        raise ConfigError(f"--resume: no training state at {path}; start without --resume")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["fingerprint"] != fingerprint:
        raise ConfigError(f"--resume: {path} was written for another dataset or training config; use the "
                          "same --data and --config, or another --state folder to start over")
    model.load_state_dict(state["model"], strict=True)
    encoder.model.load_state_dict(state["image_encoder"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


# --- the loop -----------------------------------------------------------------------------------------------


def _batches(episodes: Sequence[BCEpisode], config: TrainConfig,
             first: int) -> Iterator[tuple[int, list[int]]]:
    lengths = [e.steps for e in episodes]
    step = 0
    for epoch in range(config.epochs):
        for batch in batch_schedule(lengths, config.batch_episodes, config.seed, epoch):
            if step >= first:
                yield step, batch
            step += 1


def train(data: str | Path, config: TrainConfig, out: str | Path, *, state_dir: str | Path = "runs/bc_state",
          resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train on the shards in ``data``, log progress, keep a resumable state, save the policy to ``out``.

    ``stop_after`` ends the run after that many optimisation steps in total, as an interruption would (the
    state is saved there, ``resume`` continues); the policy in ``out`` is then the one at that step.

    Raises:
        ConfigError: no shards, a vocabulary larger than the text encoder's, or a state that does not
            belong to this dataset and config (with ``resume``).
    """
    shards = sorted(list_shards(data), key=lambda s: (_seed_of(s), s.name))  # tasks alternate along the seeds
    if config.max_episodes:
        shards = shards[: config.max_episodes]
    cfg = load_policy_config(config.policy_config)
    instructions = [read_episode(s, images=False).instruction for s in shards]
    tokenizer = instruction_tokenizer(instructions)
    if tokenizer.vocab_size > cfg.text_encoder.vocab_size:
        raise ConfigError(f"the instruction vocabulary needs {tokenizer.vocab_size} ids but "
                          f"{config.policy_config} has text_encoder.vocab_size={cfg.text_encoder.vocab_size}")
    torch.manual_seed(config.seed)
    model = SafeVLAModel(cfg)
    encoder = PooledDinoFeatures(cfg.image_encoder, cfg.pooled_grid).eval().requires_grad_(False)
    model.eval()  # dropout off (see the module docstring); gradients still flow
    cache = Path(data) / "features" / state_dict_sha256(encoder.model.state_dict())[:16]
    episodes = load_bc_episodes(shards, encoder, cfg, tokenizer, cache)
    critic_prefixes = tuple(f"{p}." for p in cfg.branch_names if p)
    params = [p for n, p in model.named_parameters()  # the actor branch, less the frozen T5 (see encode_text)
              if not n.startswith(critic_prefixes) and ".text_encoder." not in n]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    fingerprint = _fingerprint(config, episodes)
    state_path = Path(state_dir) / STATE_FILE
    first = _load_state(state_path, model, encoder, optimizer, fingerprint) if resume else 0
    total = planned = config.epochs * math.ceil(len(episodes) / config.batch_episodes)
    logger.info("train: %d episodes, %d steps of data, %d optimisation steps (from %d), %d trainable "
                "parameters", len(episodes), sum(e.steps for e in episodes), total, first,
                sum(p.numel() for p in params))
    window_loss = window_correct = window_count = 0.0
    loss_value, accuracy = float("nan"), float("nan")
    start, done = time.perf_counter(), 0
    step = first
    for step, batch in _batches(episodes, config, first):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step, total)
        chosen = [episodes[i] for i in batch]
        logits = actor_logits(model, chosen, cfg.camera_names)
        valid = torch.stack([F.pad(torch.ones(e.steps, dtype=torch.bool), (0, logits.shape[1] - e.steps))
                             for e in chosen])
        labels = torch.stack([F.pad(e.labels, (0, logits.shape[1] - e.steps)) for e in chosen])
        loss = F.cross_entropy(logits[valid], labels[valid])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        count = int(valid.sum())
        window_loss += loss.item() * count
        window_correct += float((logits[valid].argmax(-1) == labels[valid]).sum())
        window_count += count
        done += 1
        if (step + 1) % config.log_every == 0 or step + 1 == total:
            loss_value, accuracy = window_loss / window_count, window_correct / window_count
            rate = done / (time.perf_counter() - start)
            logger.info("step %d/%d epoch %d loss %.4f acc %.3f lr %.2e %.2f it/s ETA %.0f s", step + 1,
                        total, step * config.epochs // total + 1, loss_value, accuracy,
                        optimizer.param_groups[0]["lr"], rate, (total - step - 1) / rate)
            window_loss = window_correct = window_count = 0.0
        stopping = stop_after is not None and step + 1 >= stop_after
        if (step + 1) % config.save_every == 0 or step + 1 == total or stopping:
            _save_state(state_path, step + 1, model, encoder, optimizer, fingerprint)
        if stopping:
            logger.info("stopping after step %d of %d as asked; continue with --resume", step + 1, total)
            total = step + 1
            break
    copy_actor_into_critics(model)
    policy = SafeVLAPolicy(cfg, model, encoder, tokenizer, device="cpu", precision="fp32")
    directory = policy.save_pretrained(out)
    summary = {"steps": total, "planned_steps": planned, "final_loss": loss_value, "final_accuracy": accuracy,
               "episodes": len(episodes), "dataset_steps": sum(e.steps for e in episodes),
               "seed_range": [min(e.seed for e in episodes), max(e.seed for e in episodes)],
               "train_config": to_mapping(config)}
    (directory / TRAINING_FILE).write_text(json.dumps(summary, indent=1))
    return TrainResult(total, loss_value, accuracy, directory)

