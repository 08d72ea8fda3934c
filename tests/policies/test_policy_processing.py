"""Configuration files, deterministic image pre-processing and the offline tokenizers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from policies.configuration_safevla import SafeVLAConfig, load_policy_config
from policies.processor_safevla import ImageProcessor, WordTokenizer, load_tokenizer
from safevla_node.errors import ConfigError, PolicyLoadError

REPO = Path(__file__).resolve().parents[2]


def test_full_config_file_equals_the_released_defaults() -> None:
    cfg = load_policy_config(REPO / "config" / "policy_safevla_full.yaml")
    assert cfg == SafeVLAConfig(name="safevla_full")
    assert cfg.image_encoder.patch_grid == (16, 27) and cfg.decoder_ffn_hidden == 1536 and cfg.start_token == 20


def test_tiny_config_is_small(tiny_config) -> None:
    assert tiny_config.d_model == 64 and tiny_config.image_encoder.depth == 2 and tiny_config.cost_critic


@pytest.mark.parametrize(("override", "message"), [
    ({"d_model": 100, "fusion_heads": 8}, r"d_model=100 is not divisible by fusion_heads=8"),
    ({"pooled_grid": [20, 12]}, r"pooled_grid=\(20, 12\) must lie within the patch grid \(16, 27\)"),
    ({"max_steps": 0}, r"max_steps=0 is out of range"),
    ({"image_encoder": {"crop_width": 4}}, r"cropped width=376 is not a multiple of patch_size=14"),
    ({"decoder_layer": 3}, r"unknown key\(s\) \['decoder_layer'\]"),
])
def test_invalid_config_values_are_rejected(tmp_path: Path, override: dict, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(override))
    with pytest.raises(ConfigError, match=message):
        load_policy_config(path)


def test_stored_frames_preprocess_exactly_like_the_original(golden_dir: Path) -> None:
    processor = ImageProcessor()
    for camera in ("nav", "manip"):
        png = golden_dir.parent / "ai2thor" / f"stretch_spoc_{camera}_camera.png"
        rgb = np.asarray(Image.open(png).convert("RGB"))
        reference = np.load(golden_dir / f"{camera}_camera_preprocessed_bhwc.npy")[0]
        assert np.array_equal(processor(rgb).permute(1, 2, 0).numpy(), reference)


def test_ai2thor_frames_lose_six_columns_per_side() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (224, 396, 3), dtype=np.uint8)
    fitted = ImageProcessor().fit(frame)
    assert np.array_equal(fitted.permute(1, 2, 0).numpy(), frame[:, 6:390].astype(np.float32))


def test_other_cameras_are_centre_cropped_and_resized() -> None:
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    frame[:, 320:] = 255
    fitted = ImageProcessor().fit(frame)
    assert tuple(fitted.shape) == (3, 224, 384)
    assert fitted[:, :, :150].max() == 0 and fitted[:, :, 234:].min() > 254.99


def test_non_uint8_images_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB image"):
        ImageProcessor()(np.zeros((224, 384, 3), dtype=np.float32))


def test_word_tokenizer_is_deterministic_with_t5_specials(tmp_path: Path) -> None:
    tokenizer = WordTokenizer.from_texts(["Fetch the zebra", "find a mug"])
    encoded = tokenizer("Find a MUG, Zebra! xyzzy")
    assert encoded.input_ids[-1] == WordTokenizer.EOS and WordTokenizer.UNK in encoded.input_ids
    assert encoded.attention_mask == (1,) * len(encoded.input_ids)
    assert tokenizer.words[-2:] == ("fetch", "zebra")
    tokenizer.save(tmp_path / "tokenizer.json")
    assert load_tokenizer(tmp_path / "tokenizer.json")("find a mug zebra") == tokenizer("find a mug zebra")


def test_missing_tokenizer_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="tokenizer not found: .*nope"):
        load_tokenizer(tmp_path / "nope")
