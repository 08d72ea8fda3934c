"""Behaviour cloning: expert collection, teacher-forced training, resume, and the shipped checkpoint.

Real MuJoCo episodes and real training steps on them (two short easy episodes: an ObjectNav of a few
steps and a PickUp of about thirty), kept small enough for CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from policies.bc import CollectSettings, collect, list_shards, read_episode, record_episode
from policies.bc.collect import make_collect_backend
from policies.bc.configuration_bc import TrainConfig, load_train_config
from policies.bc.train import (
    BCEpisode,
    actor_logits,
    batch_schedule,
    copy_actor_into_critics,
    instruction_tokenizer,
    load_bc_episodes,
    train,
)
from policies.configuration_safevla import load_policy_config
from policies.modeling_safevla import SafeVLAModel
from policies.runtime import PolicyObservation, SafeVLAPolicy
from safevla_node.actions import ACTIONS, START_TOKEN, ActionKind
from safevla_node.errors import ConfigError
from safevla_node.evaluation.policies import resolve_checkpoint
from sim_bridge.expert import Expert
from sim_bridge.interface import SimBackend, TaskKind

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "config" / "policy_tiny.yaml"
#: Easy scenes whose ObjectNav (seed 1028) and PickUp (seed 1029) episodes are short and succeed.
FIRST_SEED = 1028
#: The tiny network on 112x56 images (a 4x8 patch grid), so CI trains in seconds; cameras render at that size.
SMALL_IMAGES = {"pooled_grid": [4, 8], "image_encoder": {"image_height": 56, "image_width": 112, "crop_width": 0}}
SETTINGS = CollectSettings(camera_size=(112, 56), difficulty="easy", noise=0.0, max_steps=60)


@pytest.fixture(scope="module")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data["pooled_grid"] = SMALL_IMAGES["pooled_grid"]
    data["image_encoder"].update(SMALL_IMAGES["image_encoder"])
    path = tmp_path_factory.mktemp("bc_config") / "policy_small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def quick(small_config: Path) -> TrainConfig:
    return TrainConfig(policy_config=str(small_config), epochs=6, batch_episodes=2, learning_rate=3e-3,
                       warmup_steps=0, log_every=1, save_every=100)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bc_data")
    summaries = collect(out, 2, SETTINGS, first_seed=FIRST_SEED, workers=1)
    assert [s.skipped for s in summaries] == ["", ""]
    return out


@pytest.fixture(scope="module")
def backend() -> Iterator[SimBackend]:
    sim = make_collect_backend(SETTINGS)
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def trained(dataset: Path, quick: TrainConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bc_run")
    train(dataset, quick, root / "policy", state_dir=root / "state")
    return root


def test_shards_hold_what_the_expert_saw_and_did(dataset: Path, backend: SimBackend) -> None:
    shards = list_shards(dataset)
    assert [s.name for s in shards] == ["objectnav-001028.npz", "pickup-001029.npz"]
    for shard in shards:
        episode = read_episode(shard)
        task, seed = TaskKind(episode.meta["task"]), int(episode.meta["seed"])
        observation = backend.reset(seed, task)
        expert = Expert(backend)  # type: ignore[arg-type]
        assert episode.instruction == backend.status().task.instruction
        assert episode.prev_action[0] == START_TOKEN
        np.testing.assert_array_equal(episode.prev_action[1:], episode.executed_action[:-1])
        np.testing.assert_array_equal(episode.executed_action, episode.expert_action)  # noise 0
        for t in range(episode.steps):
            assert expert.act(observation) == episode.expert_action[t]
            np.testing.assert_array_equal(episode.nav_rgb[t], observation.nav_camera.rgb)
            np.testing.assert_array_equal(episode.manip_rgb[t], observation.manip_camera.rgb)
            assert episode.object_in_hand[t] == (observation.snapshot.robot.held_object_id is not None)
            result = backend.execute_action(int(episode.executed_action[t]))
            observation = result.observation
        assert result.status.done and result.status.success and episode.meta["success"]
    assert read_episode(shards[1]).object_in_hand[-1] == 1  # the PickUp ends holding its target


def test_noise_executes_random_actions_of_the_same_kind_and_keeps_the_expert_label(backend: SimBackend) -> None:
    noisy = replace(SETTINGS, noise=1.0, max_steps=8)
    episode = record_episode(backend, TaskKind.PICKUP, FIRST_SEED + 1, noisy)
    labels, ran = episode.expert_action, episode.executed_action
    assert episode.meta["noise_steps"] == int((labels != ran).sum()) > 0
    for label, executed in zip(labels, ran):
        kind = ACTIONS[label].kind
        assert ACTIONS[executed].kind is kind
        if kind not in (ActionKind.BASE, ActionKind.ARM):
            assert executed == label
    np.testing.assert_array_equal(episode.prev_action[1:], ran[:-1])


def test_collect_skips_finished_episodes_when_rerun(dataset: Path) -> None:
    assert collect(dataset, 2, SETTINGS, first_seed=FIRST_SEED) == []


def test_collect_and_list_reject_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="difficulty='extreme' must be easy, medium or hard"):
        CollectSettings(difficulty="extreme")
    with pytest.raises(ConfigError, match=r"episodes=0 is out of range"):
        collect(tmp_path, 0)
    with pytest.raises(ConfigError, match=r"no BC episodes \(\*.npz\) in .*run `python -m policies.bc collect"):
        list_shards(tmp_path)


def test_train_config_file_is_valid_and_typos_are_rejected(tmp_path: Path) -> None:
    assert load_train_config(REPO / "config" / "train_bc.yaml").policy_config == "config/policy_tiny.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    with pytest.raises(ConfigError, match="epochz"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match=r"TrainConfig.epochs=0 is out of range"):
        TrainConfig(epochs=0)


def test_actor_logits_equal_the_models_forward_sequence(small_config: Path) -> None:
    cfg = load_policy_config(small_config)
    torch.manual_seed(0)
    model = SafeVLAModel(cfg).eval()
    steps, grid = 5, cfg.pooled_grid
    episode = BCEpisode("x", 0, torch.tensor([5, 9, 1]), torch.randn(steps, 2, cfg.image_encoder.embed_dim, *grid),
                        torch.tensor([START_TOKEN, 3, 0, 0, 2]), torch.tensor([0, 0, 1, 1, 0]),
                        torch.zeros(steps, dtype=torch.long))
    with torch.no_grad():
        ours = actor_logits(model, [episode], cfg.camera_names)
        ids = episode.input_ids[None]
        pooled = {n: episode.features[None, :, k] for k, n in enumerate(cfg.camera_names)}
        reference = model.forward_sequence(ids, torch.ones_like(ids), pooled, episode.prev_action[None],
                                           episode.object_in_hand[None], torch.arange(steps)[None]).logits
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_critics_become_copies_of_the_actor_with_zero_value_heads(small_config: Path) -> None:
    torch.manual_seed(0)
    model = SafeVLAModel(load_policy_config(small_config))
    copy_actor_into_critics(model)
    for prefix in ("critic_tsfm", "c_critic_tsfm"):
        branch = model.branch(prefix)
        torch.testing.assert_close(branch.decoder.output.weight, model.decoder.output.weight)
        assert not branch.critic.fc.weight.any() and not branch.critic.fc.bias.any()


def test_batch_schedule_covers_every_episode_once_per_epoch_and_depends_only_on_its_seed() -> None:
    lengths = [5, 40, 7, 90, 12, 33, 61]
    schedule = batch_schedule(lengths, 3, seed=4, epoch=1)
    assert sorted(i for batch in schedule for i in batch) == list(range(len(lengths)))
    assert schedule == batch_schedule(lengths, 3, seed=4, epoch=1) != batch_schedule(lengths, 3, seed=4, epoch=2)


def test_every_simulator_instruction_word_is_in_the_vocabulary() -> None:
    from sim_bridge.homegen.catalog import FURNITURE, ITEMS
    from sim_bridge.tasks import instruction

    tokenizer = instruction_tokenizer([])
    for item in ITEMS:
        for kind in TaskKind:
            text = instruction(kind, item, next(iter(FURNITURE)))
            assert tokenizer.UNK not in tokenizer(text).input_ids, text
    assert tokenizer.vocab_size <= load_policy_config(TINY).text_encoder.vocab_size


def _dataset_loss(policy: SafeVLAPolicy, dataset: Path, cache: Path) -> float:
    episodes = load_bc_episodes(list_shards(dataset), policy.image_encoder, policy.config, policy.tokenizer, cache)
    with torch.no_grad():
        logits = actor_logits(policy.model, episodes, policy.config.camera_names)
    losses = [F.cross_entropy(logits[i, : e.steps], e.labels, reduction="sum") for i, e in enumerate(episodes)]
    return float(sum(losses)) / sum(e.steps for e in episodes)


def test_training_lowers_the_loss_and_the_checkpoint_round_trips(dataset: Path, trained: Path, quick: TrainConfig,
                                                                  tmp_path: Path) -> None:
    policy = SafeVLAPolicy.from_pretrained(trained / "policy", device="cpu", precision="fp32")
    torch.manual_seed(quick.seed)  # the untrained starting point of the same run (same frozen image encoder)
    start = SafeVLAPolicy(policy.config, SafeVLAModel(policy.config), policy.image_encoder, policy.tokenizer,
                          device="cpu", precision="fp32")
    assert _dataset_loss(policy, dataset, tmp_path) < _dataset_loss(start, dataset, tmp_path) - 0.3
    saved = load_file(str(trained / "policy" / "model.safetensors"))
    reloaded = {k: v for k, v in policy.model.state_dict().items() if k in saved}
    assert all(torch.equal(saved[k], reloaded[k]) for k in reloaded)


def test_the_runtime_step_by_step_reproduces_the_teacher_forced_logits(dataset: Path, trained: Path,
                                                                       tmp_path: Path) -> None:
    policy = SafeVLAPolicy.from_pretrained(trained / "policy", device="cpu", precision="fp32")
    shard = list_shards(dataset)[0]
    episode = read_episode(shard)
    [bc] = load_bc_episodes([shard], policy.image_encoder, policy.config, policy.tokenizer, tmp_path / "cache")
    with torch.no_grad():
        forced = actor_logits(policy.model, [bc], policy.config.camera_names)[0]
    policy.reset()
    for t in range(episode.steps):
        out = policy.select_action(PolicyObservation(episode.instruction, episode.nav_rgb[t], episode.manip_rgb[t],
                                                     bool(episode.object_in_hand[t])))
        np.testing.assert_allclose(out.logits, forced[t].numpy(), atol=1e-4)
        policy.override_last_action(int(episode.executed_action[t]))


def test_resume_continues_from_the_saved_step_like_an_uninterrupted_run(dataset: Path, trained: Path,
                                                                          quick: TrainConfig, tmp_path: Path) -> None:
    state = tmp_path / "state"
    train(dataset, quick, tmp_path / "policy", state_dir=state, stop_after=3)
    assert torch.load(state / "last.pt", weights_only=True)["step"] == 3
    result = train(dataset, quick, tmp_path / "policy", state_dir=state, resume=True)
    assert result.steps == 6
    uninterrupted = load_file(str(trained / "policy" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "policy" / "model.safetensors"))
    for key, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[key], tensor, atol=1e-6, rtol=1e-5)


def test_resume_refuses_a_missing_state_or_one_from_another_config(dataset: Path, trained: Path,
                                                                  quick: TrainConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--resume: no training state at"):
        train(dataset, quick, tmp_path / "p", state_dir=tmp_path / "none", resume=True)
    with pytest.raises(ConfigError, match="written for another dataset or training config"):
        train(dataset, replace(quick, learning_rate=1e-4), tmp_path / "p", state_dir=trained / "state", resume=True)


def test_the_shipped_checkpoint_loads_strictly_and_acts_on_a_rendered_frame() -> None:
    from sim_bridge.homegen import HomeGenConfig
    from sim_bridge.registry import make_backend

    path = resolve_checkpoint("shipped")
    assert path == REPO / "policies" / "checkpoints" / "bc_tiny"
    assert (path / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    policy = SafeVLAPolicy.from_pretrained(path, device="cpu", precision="fp32")  # strict: raises on any mismatch
    sim = make_backend("mujoco", camera_size=(396, 224), depth=False, home_config=HomeGenConfig.easy())
    try:
        observation = sim.reset(7, TaskKind.PICKUP)
        instruction = sim.status().task.instruction
        policy.reset()
        mask = np.ones(len(ACTIONS), dtype=bool)
        mask[[4, 5]] = False  # end, sub_done
        for _ in range(3):
            out = policy.select_action(PolicyObservation(instruction, observation.nav_camera.rgb,
                                                         observation.manip_camera.rgb), action_mask=mask)
            assert out.probabilities.shape == (len(ACTIONS),) and np.all(out.probabilities >= 0)
            assert out.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
            assert not out.probabilities[~mask].any() and mask[out.action_index]
            assert out.cost_value == 0.0  # critics are copies of the actor with zero value heads
            observation = sim.execute_action(out.action_index).observation
    finally:
        sim.close()


def test_the_bc_eval_suite_evaluates_the_shipped_policy_on_every_task() -> None:
    # (that it holds out the training seeds: tests/evaluation/test_suite.py, for every suite)
    from safevla_node.evaluation.suite import expand, load_suite

    specs = expand(load_suite(REPO / "config" / "eval_suite_bc.yaml"))
    assert {s.task for s in specs} == set(TaskKind)
    assert all(s.policy.checkpoint in ("", "shipped") for s in specs)
