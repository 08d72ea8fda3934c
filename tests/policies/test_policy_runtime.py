"""SafeVLAPolicy behaviour: KV cache equals recomputation, determinism, masking, episode handling."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from policies.configuration_safevla import SafeVLAConfig
from policies.modeling_safevla import SafeVLAModel
from policies.runtime import PolicyObservation, SafeVLAPolicy, select_device
from safevla_node.errors import PolicyLoadError
from tests.gpu import requires_cuda

RNG = np.random.default_rng(1)
FRAMES = [RNG.integers(0, 256, (224, 396, 3), dtype=np.uint8) for _ in range(3)]


def _obs(t: int, instruction: str = "find a mug") -> PolicyObservation:
    return PolicyObservation(instruction, FRAMES[t % 3], FRAMES[(t + 1) % 3], object_in_hand=t % 4 == 3)


def _episode_inputs(cfg: SafeVLAConfig, steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rows, cols = cfg.pooled_grid
    pooled = {n: torch.randn(1, steps, cfg.image_encoder.embed_dim, rows, cols, generator=g) for n in cfg.camera_names}
    actions = torch.randint(0, cfg.num_actions, (1, steps), generator=g)
    prev = torch.cat([torch.full((1, 1), cfg.start_token), actions[:, :-1]], dim=1)
    in_hand = torch.randint(0, 2, (1, steps), generator=g)
    ids = torch.randint(3, cfg.text_encoder.vocab_size, (1, 9), generator=g)
    return ids, pooled, prev, in_hand, torch.arange(steps)[None]


def _cached_vs_full(model: SafeVLAModel, steps: int) -> float:
    ids, pooled, prev, in_hand, time = _episode_inputs(model.cfg, steps)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        full = model.forward_sequence(ids, mask, pooled, prev, in_hand, time)
        state = model.start_episode(ids, mask)
        worst = 0.0
        for t in range(steps):
            out = model.step(state, {n: g[:, t] for n, g in pooled.items()}, prev[:, t], in_hand[:, t], time[:, t])
            for a, b in ((out.logits, full.logits[:, t]), (out.reward_value, full.reward_value[:, t]),
                         (out.cost_value, full.cost_value[:, t])):
                worst = max(worst, (a - b).abs().max().item())
    return worst


def test_kv_cached_steps_equal_full_recomputation_tiny(tiny_policy) -> None:
    assert _cached_vs_full(tiny_policy.model, steps=24) < 1e-5


@pytest.mark.slow
def test_kv_cached_steps_equal_full_recomputation_full_model(full_model) -> None:
    assert _cached_vs_full(full_model, steps=4) < 1e-4


def test_cache_restarts_when_max_steps_is_reached(tiny_config) -> None:
    cfg = dataclasses.replace(tiny_config, max_steps=3)
    torch.manual_seed(0)
    model = SafeVLAModel(cfg).eval()
    ids, pooled, prev, in_hand, time = _episode_inputs(cfg, 4)
    step = {n: g[:, 3] for n, g in pooled.items()}
    with torch.inference_mode():
        state = model.start_episode(ids, torch.ones_like(ids))
        for t in range(3):
            model.step(state, {n: g[:, t] for n, g in pooled.items()}, prev[:, t], in_hand[:, t], time[:, t])
        wrapped = model.step(state, step, prev[:, 3], in_hand[:, 3], time[:, 3])
        fresh = model.step(model.start_episode(ids, torch.ones_like(ids)), step, prev[:, 3], in_hand[:, 3], time[:, 3])
    assert state.restarts == 1
    assert torch.allclose(wrapped.logits, fresh.logits, atol=1e-6)


def test_a_slot_cache_appends_one_step_per_row_and_refuses_a_full_row(tiny_config) -> None:
    decoder = SafeVLAModel(tiny_config).eval().decoder
    cache = decoder.new_cache(2, 3, per_row=True)
    step = torch.zeros(2, 1, tiny_config.d_model)
    with pytest.raises(ValueError, match="one step at a time"):
        decoder(torch.zeros(2, 2, tiny_config.d_model), cache)
    cache.lengths[1] = 2
    decoder(step, cache)
    assert cache.lengths.tolist() == [1, 3]
    with pytest.raises(ValueError, match="KV cache full: a row holds 3 steps, capacity 3"):
        decoder(step, cache)


def test_same_inputs_give_identical_outputs_after_reset(tiny_policy) -> None:
    first = [tiny_policy.select_action(_obs(t)) for t in range(4)]
    tiny_policy.reset()
    second = [tiny_policy.select_action(_obs(t)) for t in range(4)]
    for a, b in zip(first, second):
        assert a.action_index == b.action_index and np.array_equal(a.logits, b.logits)
        assert a.reward_value == b.reward_value and a.cost_value == b.cost_value


def test_history_changes_the_output(tiny_policy) -> None:
    tiny_policy.select_action(_obs(0))
    after_history = tiny_policy.select_action(_obs(1)).logits
    tiny_policy.reset()
    fresh = tiny_policy.select_action(_obs(1)).logits
    assert not np.allclose(after_history, fresh)


def test_masked_actions_get_exactly_zero_probability(tiny_policy) -> None:
    mask = np.ones(20, dtype=bool)
    unmasked = tiny_policy.select_action(_obs(0))
    mask[unmasked.action_index] = False
    mask[:5] = False
    tiny_policy.reset()
    out = tiny_policy.select_action(_obs(0), action_mask=mask)
    assert np.all(out.probabilities[~mask] == 0.0)
    assert out.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert mask[out.action_index] and out.action_index == int(np.argmax(np.where(mask, out.logits, -np.inf)))


def test_sampling_is_reproducible_and_respects_the_mask(tiny_policy) -> None:
    mask = np.zeros(20, dtype=bool)
    mask[[2, 9, 15]] = True
    picks = []
    for _ in range(2):
        tiny_policy.reset()
        g = torch.Generator().manual_seed(7)
        picks.append([tiny_policy.select_action(_obs(t), mask, deterministic=False, generator=g).action_index
                      for t in range(6)])
    assert picks[0] == picks[1] and set(picks[0]) <= {2, 9, 15}


def test_all_masked_actions_are_rejected(tiny_policy) -> None:
    with pytest.raises(ValueError, match="disallows every action"):
        tiny_policy.select_action(_obs(0), action_mask=np.zeros(20, dtype=bool))


def test_mask_of_wrong_shape_is_rejected(tiny_policy) -> None:
    with pytest.raises(ValueError, match=r"bool array of shape \(20,\)"):
        tiny_policy.select_action(_obs(0), action_mask=np.ones(19, dtype=bool))


def test_instruction_change_within_an_episode_is_rejected(tiny_policy) -> None:
    tiny_policy.select_action(_obs(0))
    with pytest.raises(ValueError, match="instruction changed within an episode"):
        tiny_policy.select_action(_obs(1, "pick up a mug"))
    tiny_policy.reset()
    tiny_policy.select_action(_obs(1, "pick up a mug"))


def test_pre_tokenised_ids_equal_the_text_path(tiny_policy) -> None:
    text = tiny_policy.select_action(_obs(0)).logits
    tiny_policy.reset()
    ids = tiny_policy.tokenizer("find a mug").input_ids
    assert np.array_equal(text, tiny_policy.select_action(PolicyObservation(ids, FRAMES[0], FRAMES[1])).logits)


def test_out_of_vocabulary_ids_are_rejected(tiny_policy) -> None:
    with pytest.raises(ValueError, match=r"instruction ids must be non-empty and in \[0, 256\)"):
        tiny_policy.select_action(PolicyObservation((5, 999, 1), FRAMES[0], FRAMES[1]))


def test_executed_action_override_is_fed_back(tiny_policy) -> None:
    chosen = tiny_policy.select_action(_obs(0)).action_index
    as_chosen = tiny_policy.select_action(_obs(1)).logits
    tiny_policy.reset()
    tiny_policy.select_action(_obs(0))
    tiny_policy.override_last_action((chosen + 1) % 20)
    assert not np.allclose(tiny_policy.select_action(_obs(1)).logits, as_chosen)
    with pytest.raises(ValueError, match=r"action_index=20 is out of range"):
        tiny_policy.override_last_action(20)


def test_override_before_any_step_is_rejected(tiny_policy) -> None:
    with pytest.raises(ValueError, match="before any select_action"):
        tiny_policy.override_last_action(0)


def test_precomputed_features_skip_the_image_encoder(tiny_policy) -> None:
    with torch.inference_mode():
        batch = torch.stack([tiny_policy.processor(FRAMES[0]), tiny_policy.processor(FRAMES[1])])
        pooled = tiny_policy.image_encoder(batch).numpy()
    from_frames = tiny_policy.select_action(_obs(0)).logits
    tiny_policy.reset()
    tiny_policy.image_encoder = None
    obs = PolicyObservation("find a mug", nav_features=pooled[0], manip_features=pooled[1])
    assert np.allclose(tiny_policy.select_action(obs).logits, from_frames, atol=1e-6)
    with pytest.raises(PolicyLoadError, match="no image encoder loaded"):
        tiny_policy.select_action(_obs(1))


def test_missing_camera_is_rejected(tiny_policy) -> None:
    with pytest.raises(ValueError, match="needs 2 camera frames"):
        tiny_policy.select_action(PolicyObservation("find a mug", FRAMES[0], None))


def test_bf16_on_cpu_stays_close_to_fp32(tiny_policy) -> None:
    fp32 = tiny_policy.select_action(_obs(0)).probabilities
    bf16 = SafeVLAPolicy(tiny_policy.config, tiny_policy.model, tiny_policy.image_encoder, tiny_policy.tokenizer,
                         device="cpu", precision="bf16")
    assert np.abs(bf16.select_action(_obs(0)).probabilities - fp32).max() < 0.02


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-4), ("bf16", 0.02), ("fp16", 0.01)])
@requires_cuda
def test_cuda_runtime_follows_the_cpu_over_an_episode(tiny_policy, precision, tolerance) -> None:
    cpu = [tiny_policy.select_action(_obs(t)).probabilities for t in range(4)]
    model, encoder = copy.deepcopy(tiny_policy.model), copy.deepcopy(tiny_policy.image_encoder)
    gpu = SafeVLAPolicy(tiny_policy.config, model, encoder, tiny_policy.tokenizer, device="cuda", precision=precision)
    for t, expected in enumerate(cpu):
        assert np.abs(gpu.select_action(_obs(t)).probabilities - expected).max() < tolerance, f"step {t}"


def test_fp16_is_refused_on_cpu(tiny_policy) -> None:
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        SafeVLAPolicy(tiny_policy.config, tiny_policy.model, device="cpu", precision="fp16")


def test_auto_device_is_cuda_only_when_available() -> None:
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_tiny_model_learns_an_action_sequence_by_behaviour_cloning(tiny_config) -> None:
    torch.manual_seed(0)
    model = SafeVLAModel(tiny_config).train()
    ids, pooled, prev, in_hand, time = _episode_inputs(tiny_config, 8)
    targets = torch.cat([prev[:, 1:], torch.tensor([[4]])], dim=1)  # imitate the logged actions, then 'end'
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        logits = model.forward_sequence(ids, torch.ones_like(ids), pooled, prev, in_hand, time).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
