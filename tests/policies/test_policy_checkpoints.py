"""Checkpoint formats are read strictly: a checkpoint that does not fit fails loudly, naming the keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.checkpoints import (
    MODEL_FILE,
    check_state_dict,
    lightning_to_policy_state,
    load_dinov2_weights,
    load_t5_encoder_weights,
    read_checkpoint,
)
from policies.configuration_safevla import SafeVLAConfig
from policies.convert import main as convert_main
from policies.modeling_safevla import SafeVLAModel
from policies.processor_safevla import WordTokenizer
from policies.runtime import PolicyObservation, SafeVLAPolicy
from safevla_node.errors import PolicyLoadError

RGB = np.random.default_rng(0).integers(0, 256, (224, 396, 3), dtype=np.uint8)
IDS = WordTokenizer.from_texts([])("find a mug").input_ids  # pre-tokenised: loaded .pt files carry no tokenizer


def _outputs(policy: SafeVLAPolicy, steps: int = 3) -> list[np.ndarray]:
    policy.reset()
    return [policy.select_action(PolicyObservation(IDS, RGB, RGB, object_in_hand=t == 2)).logits
            for t in range(steps)]


def _il_layout(policy: SafeVLAPolicy) -> dict[str, torch.Tensor]:
    """The FLaRe IL Lightning layout of a policy's root branch (what train_pl.py would have saved)."""
    critic_prefixes = tuple(p + "." for p in policy.config.branch_names if p)
    state = {}
    for key, tensor in policy.model.state_dict().items():
        if key.startswith(critic_prefixes) or key.startswith("critic."):
            continue
        state["model." + key.replace("actor.linear.", "actor.")] = tensor.clone()
    for key, tensor in policy.image_encoder.model.state_dict().items():
        state["model.visual_encoder.image_encoder.model." + key] = tensor.clone()
    return state


def test_manifest_il_layout_maps_onto_every_branch_of_the_full_model(manifest, rl_shapes, dinov2_shapes) -> None:
    il = manifest["checkpoints"]["il_lightning_ckpt"]["keys"]
    meta = {k: torch.empty(v["shape"], device="meta") for k, v in il.items()}
    policy_state, dinov2_state = lightning_to_policy_state(meta, SafeVLAConfig())
    check_state_dict(rl_shapes, policy_state, "manifest IL layout")
    assert {k: list(v.shape) for k, v in dinov2_state.items()} == dinov2_shapes


def test_lightning_checkpoint_loads_root_weights_into_every_branch(tiny_policy, tmp_path: Path) -> None:
    path = tmp_path / "il.ckpt"
    torch.save({"state_dict": _il_layout(tiny_policy), "epoch": 3, "global_step": 50000}, path)
    loaded = SafeVLAPolicy.from_pretrained(path, device="cpu", config=tiny_policy.config)
    state = loaded.model.state_dict()
    root = tiny_policy.model.state_dict()
    for prefix in ("", "critic_tsfm.", "c_critic_tsfm."):
        assert torch.equal(state[prefix + "actor.linear.weight"], root["actor.linear.weight"])
        assert torch.equal(state[prefix + "decoder.output.weight"], root["decoder.output.weight"])
        assert not state[prefix + "critic.fc.weight"].any()
    out = loaded.select_action(PolicyObservation(IDS, RGB, RGB))
    assert out.reward_value == 0.0 and out.cost_value == 0.0


def test_allenact_checkpoint_loads_strictly_and_reproduces_outputs(tiny_policy, tmp_path: Path) -> None:
    path = tmp_path / "safe_tiny.pt"
    torch.save({"model_state_dict": tiny_policy.model.state_dict(), "total_steps": 10, "trainer_seed": 1}, path)
    loaded = SafeVLAPolicy.from_pretrained(path, device="cpu", config=tiny_policy.config)
    loaded.image_encoder = tiny_policy.image_encoder
    assert all(np.array_equal(a, b) for a, b in zip(_outputs(loaded), _outputs(tiny_policy)))


def test_missing_key_is_reported_by_name(tiny_policy, tmp_path: Path) -> None:
    state = tiny_policy.model.state_dict()
    del state["c_critic_tsfm.critic.fc.bias"]
    torch.save({"model_state_dict": state}, tmp_path / "a.pt")
    with pytest.raises(PolicyLoadError, match=r"1 missing keys: c_critic_tsfm\.critic\.fc\.bias"):
        SafeVLAPolicy.from_pretrained(tmp_path / "a.pt", device="cpu", config=tiny_policy.config)


def test_unexpected_key_is_reported_by_name(tiny_policy, tmp_path: Path) -> None:
    state = tiny_policy.model.state_dict()
    state["module.extra"] = torch.zeros(2)
    torch.save({"model_state_dict": state}, tmp_path / "a.pt")
    with pytest.raises(PolicyLoadError, match=r"1 unexpected keys: module\.extra"):
        SafeVLAPolicy.from_pretrained(tmp_path / "a.pt", device="cpu", config=tiny_policy.config)


def test_mis_shaped_key_is_reported_with_both_shapes(tiny_policy, tmp_path: Path) -> None:
    state = tiny_policy.model.state_dict()
    state["actor.linear.weight"] = torch.zeros(19, 64)
    torch.save({"model_state_dict": state}, tmp_path / "a.pt")
    with pytest.raises(PolicyLoadError, match=r"actor\.linear\.weight \(checkpoint \[19, 64\], model \[20, 64\]\)"):
        SafeVLAPolicy.from_pretrained(tmp_path / "a.pt", device="cpu", config=tiny_policy.config)


def test_long_key_lists_are_truncated_with_counts(tiny_policy, tmp_path: Path) -> None:
    state = {k: v for k, v in tiny_policy.model.state_dict().items() if not k.startswith("c_critic_tsfm.")}
    torch.save({"model_state_dict": state}, tmp_path / "flare.pt")
    with pytest.raises(PolicyLoadError, match=r"missing keys: .*, \.\.\. and \d+ more") as info:
        SafeVLAPolicy.from_pretrained(tmp_path / "flare.pt", device="cpu", config=tiny_policy.config)
    expected = sum(1 for k in tiny_policy.model.state_dict() if k.startswith("c_critic_tsfm."))
    assert f"{expected} missing keys" in str(info.value)


def test_full_checkpoint_into_tiny_config_fails_with_mis_shaped_keys(golden_state, tiny_config) -> None:
    with pytest.raises(PolicyLoadError, match=r"\d+ mis-shaped keys: "):
        check_state_dict({k: v.shape for k, v in SafeVLAModel(tiny_config).state_dict().items()}, golden_state,
                         "safe_objnav.pt")


def test_file_without_a_state_dict_is_rejected(tmp_path: Path) -> None:
    torch.save({"weights": {}}, tmp_path / "odd.pt")
    with pytest.raises(PolicyLoadError, match=r"no 'state_dict' entry \(found \['weights'\]\)"):
        read_checkpoint(tmp_path / "odd.pt")


def test_missing_checkpoint_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="checkpoint not found: .*nothing.pt"):
        read_checkpoint(tmp_path / "nothing.pt")


@dataclass
class _TrainerState:
    step: int = 0


def test_pickled_objects_need_explicit_trust(tiny_policy, tmp_path: Path) -> None:
    torch.save({"model_state_dict": tiny_policy.model.state_dict(), "trainer": _TrainerState()}, tmp_path / "p.pt")
    with pytest.raises(PolicyLoadError, match="trust_pickle=True"):
        read_checkpoint(tmp_path / "p.pt")
    assert read_checkpoint(tmp_path / "p.pt", trust_pickle=True).source_format == "allenact"


def test_pretrained_directory_without_weights_names_the_file(tiny_policy, tmp_path: Path) -> None:
    directory = tiny_policy.save_pretrained(tmp_path / "tiny")
    (directory / MODEL_FILE).unlink()
    with pytest.raises(PolicyLoadError, match=r"model\.safetensors is missing"):
        SafeVLAPolicy.from_pretrained(directory, device="cpu")


def test_save_and_load_round_trip_is_bit_exact(tiny_policy, tmp_path: Path) -> None:
    loaded = SafeVLAPolicy.from_pretrained(tiny_policy.save_pretrained(tmp_path / "tiny"), device="cpu")
    assert loaded.config == tiny_policy.config
    for ours, theirs in ((loaded.model, tiny_policy.model), (loaded.image_encoder, tiny_policy.image_encoder)):
        a, b = ours.state_dict(), theirs.state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert all(np.array_equal(x, y) for x, y in zip(_outputs(loaded), _outputs(tiny_policy)))
    assert loaded.tokenizer("find a mug") == tiny_policy.tokenizer("find a mug")


def test_convert_cli_writes_a_loadable_directory(tiny_policy, tmp_path: Path, capsys) -> None:
    torch.save({"model_state_dict": tiny_policy.model.state_dict()}, tmp_path / "safe.pt")
    config = tiny_policy.save_pretrained(tmp_path / "cfg") / "config.yaml"
    assert convert_main([str(tmp_path / "safe.pt"), str(tmp_path / "out"), "--config", str(config)]) == 0
    loaded = SafeVLAPolicy.from_pretrained(tmp_path / "out", device="cpu")
    assert torch.equal(loaded.model.state_dict()["decoder.output.weight"],
                       tiny_policy.model.state_dict()["decoder.output.weight"])
    assert convert_main([str(tmp_path / "safe.pt"), str(tmp_path / "bad")]) == 1
    assert "mis-shaped keys" in capsys.readouterr().err


def test_missing_dinov2_weights_say_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="dinov2_vits14_pretrain.pth .*nothing is downloaded"):
        load_dinov2_weights(tmp_path / "dinov2_vits14_pretrain.pth")


def test_dinov2_pth_in_official_layout_loads_into_the_image_encoder(tiny_policy, tmp_path: Path) -> None:
    torch.save(tiny_policy.image_encoder.model.state_dict(), tmp_path / "dinov2.pth")
    torch.save({"model_state_dict": tiny_policy.model.state_dict()}, tmp_path / "safe.pt")
    loaded = SafeVLAPolicy.from_pretrained(tmp_path / "safe.pt", device="cpu", config=tiny_policy.config,
                                           dinov2_path=tmp_path / "dinov2.pth")
    assert torch.equal(loaded.image_encoder.model.pos_embed, tiny_policy.image_encoder.model.pos_embed)


def test_t5_directory_without_weights_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="no T5 weights in .*model.safetensors or pytorch_model.bin"):
        load_t5_encoder_weights(tmp_path)


def test_t5_hf_layout_fills_the_tied_embedding(tiny_policy, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    encoder = tiny_policy.model.visual_encoder.text_encoder.state_dict()
    hf = {k: v.clone() for k, v in encoder.items() if k != "encoder.embed_tokens.weight"}
    hf["decoder.final_layer_norm.weight"] = torch.ones(4)
    save_file(hf, str(tmp_path / "model.safetensors"))
    loaded = load_t5_encoder_weights(tmp_path)
    assert set(loaded) == set(encoder)
    tiny_policy.model.visual_encoder.text_encoder.load_state_dict(loaded, strict=True)
