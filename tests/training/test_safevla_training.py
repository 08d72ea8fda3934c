"""The SafeVLA model under the training protocol, and a smoke run on the embedded MuJoCo simulator."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.runtime import PolicyObservation, SafeVLAPolicy
from policies.training.actor_critic import Segment
from policies.training.config import load_train_config
from policies.training.safevla_actor_critic import SafeVLAActorCritic
from policies.training.sim_env import SimObservation, SimTaskEnv
from policies.training.trainer import Trainer
from safevla_node.cli import build_parser
from tests.gpu import requires_cuda

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny() -> SafeVLAActorCritic:
    return SafeVLAActorCritic.from_scratch(REPO / "config" / "policy_tiny.yaml", seed=0)


def _observations(n: int, seed: int, instruction: str) -> list[SimObservation]:
    rng = np.random.default_rng(seed)
    return [SimObservation(rng.integers(0, 256, (224, 396, 3), dtype=np.uint8),
                           rng.integers(0, 256, (224, 396, 3), dtype=np.uint8), instruction, bool(i % 2))
            for i in range(n)]


def test_sequence_forward_over_context_and_segment_equals_the_cached_steps(tiny):
    torch.manual_seed(0)
    obs = tiny.encode(_observations(6, 0, "find the apple"))
    actions = [3, 0, 7, 19, 2, 5]
    tiny.begin_episodes([0], 1)
    cached = []
    with torch.no_grad():
        for t, o in enumerate(obs):
            peek = tiny.act([o], torch.tensor([actions[t - 1] if t else -1]), torch.tensor([t]), advance=False)
            step = tiny.act([o], torch.tensor([actions[t - 1] if t else -1]), torch.tensor([t]))
            torch.testing.assert_close(peek.logits, step.logits)  # a peek leaves the cache as it was
            cached.append(step)
        # A shorter episode with a longer instruction: both the steps and the instruction of one row are padded.
        other = tiny.encode(_observations(2, 1, "pick up the red mug"))
        tiny.begin_episodes([0], 1)
        cached += [tiny.act([o], torch.tensor([[-1, 1][t]]), torch.tensor([t])) for t, o in enumerate(other)]
        # steps 0-3 were an earlier rollout (context); the segment is steps 4-5
        heads = tiny([Segment(obs, actions, context=4), Segment(other, [1, 2])])
    for field in ("logits", "reward_value", "cost_value"):
        torch.testing.assert_close(getattr(heads, field), torch.cat([getattr(c, field) for c in cached[4:]]),
                                   atol=1e-4, rtol=1e-4)
    assert heads.logits.shape == (4, 20) and heads.cost_value.shape == (4, 1)


def test_batched_slots_act_as_each_episode_alone_at_deployment(tmp_path):
    """Three slots stepped together, with episodes ending at different steps, instructions of different
    lengths, peeks, and caches that fill up (max_steps 5) and restart: every slot's heads equal the deployment
    path's (``SafeVLAModel.step`` on that episode alone)."""
    config = (REPO / "config" / "policy_tiny.yaml").read_text().replace("max_steps: 500", "max_steps: 5")
    (tmp_path / "policy.yaml").write_text(config)
    policy = SafeVLAActorCritic.from_scratch(tmp_path / "policy.yaml", seed=3)
    instructions = ["find the apple", "pick up the red mug on the table", "go"]
    ends = {0: {4, 9}, 2: {7}}  # slot -> steps after which its episode ends; slot 1 runs 12 steps, restarting
    rng = np.random.default_rng(0)
    policy.begin_episodes(range(3), 3)
    alone: list = [None] * 3
    prev, steps = torch.full((3,), -1), torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        for t in range(12):
            obs = policy.encode([SimObservation(rng.integers(0, 256, (224, 396, 3), dtype=np.uint8),
                                                rng.integers(0, 256, (224, 396, 3), dtype=np.uint8),
                                                instructions[(e + t // 8) % 3], bool(t % 3 == e)) for e in range(3)])
            peek = policy.act(obs, prev, steps, advance=False)
            heads = policy.act(obs, prev, steps)
            torch.testing.assert_close(peek, heads, atol=1e-5, rtol=1e-5)
            for e, o in enumerate(obs):
                if alone[e] is None:
                    ids = torch.tensor([o.tokens])
                    alone[e] = policy.model.start_episode(ids, torch.ones_like(ids))
                out = policy.model.step(alone[e], {n: f[None] for n, f in o.features.items()},
                                        torch.tensor([20 if prev[e] < 0 else int(prev[e])]),
                                        torch.tensor([o.object_in_hand]), steps[e:e + 1])
                torch.testing.assert_close(heads.logits[e:e + 1], out.logits, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(heads.reward_value[e:e + 1], out.reward_value, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(heads.cost_value[e:e + 1, 0], out.cost_value, atol=1e-5, rtol=1e-5)
            actions = heads.logits.argmax(-1)
            done = torch.tensor([t in ends.get(e, ()) for e in range(3)])
            for e in torch.nonzero(done).flatten().tolist():
                alone[e] = None
            policy.begin_episodes(torch.nonzero(done).flatten().tolist(), 3)
            prev = torch.where(done, torch.full_like(actions, -1), actions)
            steps = torch.where(done, torch.zeros_like(steps), steps + 1)
    assert alone[1].restarts == 2  # slot 1's cache filled up twice and restarted, in both paths


@requires_cuda
def test_actor_critic_on_cuda_gives_the_cpu_heads_and_trains(tiny):
    actions = [3, 0, 7, 19]
    with torch.no_grad():
        cpu = tiny([Segment(tiny.encode(_observations(4, 0, "find the apple")), actions)])
    gpu = copy.deepcopy(tiny).to("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    heads = gpu([Segment(gpu.encode(_observations(4, 0, "find the apple")), actions)])
    for name in ("logits", "reward_value", "cost_value"):
        torch.testing.assert_close(getattr(heads, name).float().cpu(), getattr(cpu, name), atol=1e-4, rtol=1e-4)
    (heads.logits.sum() + heads.cost_value.sum()).backward()
    assert gpu.model.actor.linear.weight.grad.is_cuda


def test_frozen_image_encoder_gets_no_gradient_and_the_network_does(tiny):
    obs = tiny.encode(_observations(3, 2, "find the apple"))
    heads = tiny([Segment(obs, [0, 1, 2])])
    (heads.logits.sum() + heads.reward_value.sum() + heads.cost_value.sum()).backward()
    assert all(p.grad is None for p in tiny.image_encoder.parameters())
    assert tiny.model.actor.linear.weight.grad is not None
    assert tiny.model.c_critic_tsfm.critic.fc.weight.grad is not None


def test_smoke_training_on_mujoco_writes_a_policy_the_runtime_loads_and_training_restarts_from_it(tmp_path):
    config = load_train_config(REPO / "config" / "train_smoke.yaml")
    config = dataclasses.replace(config, updates=1, checkpoint_every=1,
                                 ppo=dataclasses.replace(config.ppo, rollout_steps=4))
    trainer = Trainer(config, tmp_path / "scratch", resume=False)
    try:
        summary = trainer.run()
    finally:
        trainer.close()
    assert summary["update"] == 1 and summary["env_steps"] == 2 * 4
    policy = SafeVLAPolicy.from_pretrained(tmp_path / "scratch" / "policy", device="cpu", precision="fp32")
    frame = np.zeros((224, 396, 3), dtype=np.uint8)
    out = policy.select_action(PolicyObservation("find the apple", frame, frame))
    assert 0 <= out.action_index < 20 and out.cost_value is not None
    trained = trainer.policy.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in policy.model.state_dict().items())

    args = build_parser().parse_args(["train", "--config", str(REPO / "config" / "train_smoke.yaml"), "--init",
                              str(tmp_path / "scratch" / "policy"), "--out", str(tmp_path / "tuned"),
                              "--updates", "1"])
    assert args.handler(args) == 0
    assert (tmp_path / "tuned" / "policy" / "model.safetensors").is_file()
    assert (tmp_path / "tuned" / "metrics.csv").read_text().count("\n") == 2


def test_train_command_reports_a_bad_config_and_returns_2(tmp_path, caplog):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo: {clip: 3.0}\n")
    args = build_parser().parse_args(["train", "--config", str(bad), "--out", str(tmp_path / "o")])
    assert args.handler(args) == 2
    assert "clip=3.0 is out of range" in caplog.text


def test_train_command_overrides_device_and_time_limit(tmp_path):
    args = build_parser().parse_args(["train", "--config", str(REPO / "config" / "train_toy.yaml"),
                                      "--out", str(tmp_path), "--device", "cpu", "--time-limit-min", "1e-9"])
    assert args.handler(args) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["update"] == 1


def test_train_command_refuses_a_negative_time_limit(tmp_path, caplog):
    args = build_parser().parse_args(["train", "--config", str(REPO / "config" / "train_toy.yaml"),
                                      "--out", str(tmp_path), "--time-limit-min", "-2"])
    assert args.handler(args) == 2
    assert "time_limit_min=-2.0 is out of range" in caplog.text


def test_mujoco_environment_slots_take_the_difficulties_in_turn():
    from policies.training.config import EnvConfig
    from policies.training.factory import make_env_factories

    cfg = EnvConfig(kind="mujoco", num_envs=3, difficulties=("easy", "hard"), tasks=("objectnav",),
                    camera_size=(64, 36))
    envs = [factory() for factory in make_env_factories(cfg)]
    try:
        hazards = []
        for env in envs:
            env.reset(3)
            hazards.append(bool(env.backend.scene.hazards))
    finally:
        for env in envs:
            env.close()
    assert hazards == [False, True, False]


def test_an_episode_whose_scene_has_no_target_draws_another_scene(caplog):
    from functools import partial

    from policies.training.factory import _mujoco_backend
    from policies.training.sim_env import SimTaskEnv

    env = SimTaskEnv(partial(_mujoco_backend, (64, 36), "easy"), ["objectnav"], max_episode_steps=5)
    try:
        with caplog.at_level("INFO", logger="policies.training.sim_env"):
            obs = env.reset(2000006808)  # this easy scene has no ObjectNav target (seen in a training run)
        assert "no eligible target" in caplog.text and obs.instruction.startswith("find")
    finally:
        env.close()


def test_the_fine_tuned_checkpoint_loads_strictly_and_ppo_trained_its_critics():
    # bc_tiny's critics are copies of the actor with zero value heads; 28 PPO updates (docs/finetuning.md)
    # must have moved both, or the run trained nothing.
    frame = np.random.default_rng(0).integers(0, 256, (224, 396, 3), dtype=np.uint8)
    observation = PolicyObservation("find a mug", frame, frame)
    tuned = SafeVLAPolicy.from_pretrained(REPO / "policies" / "checkpoints" / "bc_tiny_ppo_25k", device="cpu")
    out = tuned.select_action(observation)
    assert out.reward_value != 0.0 and out.cost_value != 0.0


def test_sequence_forward_encodes_context_without_gradient_and_padding_not_at_all(tiny):
    """A segment with 4 context steps and 2 trained steps, batched with a 2-step one (padded by 4): the fusion
    of every branch runs backwards over the 4 trained steps only, and never over the 4 padding steps."""
    encoded: list[tuple[int, bool]] = []  # (rows, with gradient) per fusion call
    hooks = [tiny.model.branch(prefix).visual_encoder.register_forward_hook(
        lambda _module, _inputs, out: encoded.append((out.shape[0], torch.is_grad_enabled())))
        for prefix in tiny.config.branch_names]
    long = tiny.encode(_observations(6, 0, "find the apple"))
    short = tiny.encode(_observations(2, 1, "find the mug"))
    heads = tiny([Segment(long, [3, 0, 7, 19, 2, 5], context=4), Segment(short, [1, 2])])
    for hook in hooks:
        hook.remove()
    branches = len(tiny.config.branch_names)
    assert sorted(encoded) == sorted([(4, False), (4, True)] * branches)
    heads.logits.sum().backward()  # the graph still reaches the fusion through the trained steps
    fusion = tiny.model.branch("").visual_encoder
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in fusion.parameters())


def test_per_category_cost_critics_start_as_the_summed_one_split_and_export_folds_them_back(tmp_path):
    summed = SafeVLAActorCritic.from_scratch(REPO / "config" / "policy_tiny.yaml", seed=0)
    per = SafeVLAActorCritic.from_scratch(REPO / "config" / "policy_tiny.yaml", seed=0, num_cost_heads=5)
    obs = summed.encode(_observations(3, 3, "find the apple"))
    segment = Segment(obs, [0, 1, 2])
    with torch.no_grad():
        total, split = summed([segment]).cost_value, per([segment]).cost_value
        per.begin_episodes([0], 1)
        first = per.act([obs[0]], torch.tensor([-1]), torch.tensor([0])).cost_value
    assert split.shape == (3, 5) and first.shape == (1, 5)
    torch.testing.assert_close(split.sum(-1, keepdim=True), total)
    torch.testing.assert_close(first, split[:1], atol=1e-5, rtol=1e-5)

    head = per.model.c_critic_tsfm.critic.fc
    with torch.no_grad():  # training gives each category its own value
        head.weight.add_(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)))
        head.bias.copy_(torch.arange(5.0))
        trained = per([segment]).cost_value
    assert not torch.allclose(trained, trained[:, :1].expand(-1, 5))
    per.export(tmp_path / "policy")
    assert per.model.c_critic_tsfm.critic.fc is head  # exporting leaves the training network as it was
    exported = SafeVLAActorCritic.from_pretrained(tmp_path / "policy")
    with torch.no_grad():
        torch.testing.assert_close(exported([segment]).cost_value, trained.sum(-1, keepdim=True), atol=1e-4,
                                   rtol=1e-4)


def test_training_with_a_constraint_per_cost_category_logs_each_and_resumes(tmp_path):
    config = load_train_config(REPO / "config" / "train_smoke.yaml")
    config = dataclasses.replace(
        config, updates=1, checkpoint_every=1, ppo=dataclasses.replace(config.ppo, rollout_steps=4),
        constraint=dataclasses.replace(config.constraint, mode="per_category", category_limits=(1.0,) * 5))
    trainer = Trainer(config, tmp_path, resume=False)
    try:
        trainer.run()
    finally:
        trainer.close()
    assert trainer.policy.num_cost_heads == 5
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {f"lambda_{c}" for c in trainer.constraints} <= set(header)
    assert set(trainer.constraints) == {"blind_spot", "corner", "critical", "danger", "fragile"}
    resumed = Trainer(dataclasses.replace(config, updates=2), tmp_path, resume=True)
    try:
        for key, value in trainer.policy.state_dict().items():
            torch.testing.assert_close(resumed.policy.state_dict()[key], value)
    finally:
        resumed.close()
    exported = SafeVLAPolicy.from_pretrained(tmp_path / "policy", device="cpu")
    assert exported.model.c_critic_tsfm.critic.fc.out_features == 1


#: The RL training configs (train_bc.yaml has behaviour cloning's own schema).
_TRAIN_CONFIGS = sorted(p for p in (REPO / "config").glob("train_*.yaml") if p.name != "train_bc.yaml")


@pytest.mark.parametrize("path", _TRAIN_CONFIGS, ids=lambda p: p.name)
def test_the_shipped_training_configs_load_and_their_starting_checkpoints_exist(path: Path) -> None:
    config = load_train_config(path)
    if config.env.kind == "mujoco":  # one limit per cost category of the simulator in per-category mode
        assert config.constraint.limits(SimTaskEnv.cost_names)
    if config.policy.kind == "safevla" and config.policy.init:
        assert (REPO / config.policy.init).is_dir(), config.policy.init
