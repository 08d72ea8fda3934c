"""Deterministic pre-processing of the policy inputs: camera frames and instructions.

Images follow SPOC exactly, without the original's evaluation-time augmentation: an AI2-THOR frame of
224x396 loses ``round(W * 6 / 396)`` columns on each side (224x384); any other camera is centre-cropped to
the 384:224 aspect and resized (bicubic, antialiased, as the original's ``tensor_image_preprocessor``); then
``/255`` and CLIP mean/std. The ViT later drops 3 more columns per side (``crop_width``).

Instructions: the original tokenises with the t5-small SentencePiece tokenizer, which is not available
offline. ``load_tokenizer`` uses it when ``transformers`` + ``sentencepiece`` and a local tokenizer
directory exist; otherwise callers pass pre-tokenised T5 ids, or (tiny config) use ``WordTokenizer``, a
deterministic word-level tokenizer over the simulator's instruction vocabulary. A WordTokenizer id is NOT a
T5 id: it is only meaningful for models trained with it (the tiny config), never for released checkpoints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from safevla_node.errors import PolicyLoadError

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "SIMULATOR_INSTRUCTION_WORDS",
    "ImageProcessor",
    "InstructionTokenizer",
    "TokenizedInstruction",
    "WordTokenizer",
    "load_tokenizer",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_THOR_WIDTH, _THOR_SIDE_CUT = 396, 6

#: Every word of SafeVLA's 543 validation instructions (objectnav/pickup/fetch templates and targets), plus
#: the words of the embedded simulator's tasks.
SIMULATOR_INSTRUCTION_WORDS: tuple[str, ...] = (
    "a", "alarm", "an", "and", "apple", "basketball", "bed", "bottle", "bowl", "box", "can", "chair", "clock",
    "clutch", "cup", "find", "for", "go", "grab", "grasp", "hold", "houseplant", "in", "it", "laptop", "locate",
    "mug", "navigate", "on", "pick", "place", "put", "search", "sofa", "spray", "table", "take", "television",
    "that", "the", "to", "toilet", "trash", "up", "vase",
)


class ImageProcessor:
    """uint8 RGB (H, W, 3) -> normalised float32 (3, 224, 384) tensor, deterministically."""

    def __init__(self, height: int = 224, width: int = 384) -> None:
        self.height, self.width = height, width
        self._mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        self._std = torch.tensor(CLIP_STD).view(3, 1, 1)

    def fit(self, rgb: np.ndarray) -> torch.Tensor:
        """Crop/resize to (3, height, width) uint8-valued float32, before normalisation.

        Raises:
            ValueError: not an (H, W, 3) uint8 image.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
        h, w = rgb.shape[:2]
        if h * _THOR_WIDTH == w * self.height:  # an AI2-THOR-shaped frame: SPOC's side cut
            cut = round(w * _THOR_SIDE_CUT / _THOR_WIDTH)
            rgb = rgb[:, cut:w - cut]
        elif h * self.width != w * self.height:  # other cameras: centre-crop to the model's aspect
            if w * self.height > h * self.width:
                keep = round(h * self.width / self.height)
                rgb = rgb[:, (w - keep) // 2:(w - keep) // 2 + keep]
            else:
                keep = round(w * self.height / self.width)
                rgb = rgb[(h - keep) // 2:(h - keep) // 2 + keep]
        image = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float()
        if tuple(image.shape[1:]) != (self.height, self.width):
            image = F.interpolate(image[None], size=(self.height, self.width), mode="bicubic",
                                  antialias=True, align_corners=False)[0].clamp(0, 255)
        return image

    def __call__(self, rgb: np.ndarray) -> torch.Tensor:
        """The model-ready tensor: fitted, /255, CLIP-normalised."""
        return (self.fit(rgb) / 255.0 - self._mean) / self._std


@dataclass(frozen=True)
class TokenizedInstruction:
    """Token ids ending with EOS and their attention mask (all ones for one instruction)."""

    input_ids: tuple[int, ...]
    attention_mask: tuple[int, ...]


class InstructionTokenizer(Protocol):
    """Text -> token ids (EOS appended)."""

    def __call__(self, text: str) -> TokenizedInstruction: ...


class WordTokenizer:
    """Lower-cased word-level tokenizer with T5's special ids (pad 0, eos 1, unk 2); words from id 3."""

    PAD, EOS, UNK = 0, 1, 2

    def __init__(self, words: Sequence[str]) -> None:
        if len(set(words)) != len(words):
            raise ValueError("WordTokenizer words must be unique")
        self.words = tuple(words)
        self._ids = {word: index + 3 for index, word in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], base: Sequence[str] = SIMULATOR_INSTRUCTION_WORDS) -> WordTokenizer:
        """Vocabulary = ``base`` then every new word of ``texts`` in sorted order (deterministic)."""
        extra = sorted({w for text in texts for w in cls.split(text)} - set(base))
        return cls(tuple(base) + tuple(extra))

    @staticmethod
    def split(text: str) -> list[str]:
        """Lower-case alphanumeric words."""
        return re.findall(r"[a-z0-9]+", text.lower())

    @property
    def vocab_size(self) -> int:
        """Ids in use, specials included."""
        return len(self.words) + 3

    def __call__(self, text: str) -> TokenizedInstruction:
        ids = tuple(self._ids.get(w, self.UNK) for w in self.split(text)) + (self.EOS,)
        return TokenizedInstruction(ids, (1,) * len(ids))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON."""
        Path(path).write_text(json.dumps({"type": "word", "words": list(self.words)}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        """Read a vocabulary written by ``save``.

        Raises:
            PolicyLoadError: the file is missing or not a word tokenizer.
        """
        try:
            data = json.loads(Path(path).read_text())
            return cls(tuple(data["words"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PolicyLoadError(f"cannot read word tokenizer {path}: {exc}") from None


class _HFT5Tokenizer:
    def __init__(self, directory: Path) -> None:
        from transformers import AutoTokenizer  # optional dependency, local files only

        self._tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)

    def __call__(self, text: str) -> TokenizedInstruction:
        encoded = self._tok(text)
        return TokenizedInstruction(tuple(encoded["input_ids"]), tuple(encoded["attention_mask"]))


def load_tokenizer(path: str | Path) -> InstructionTokenizer:
    """A WordTokenizer JSON file, or a local Hugging Face t5-small tokenizer directory.

    Raises:
        PolicyLoadError: the path is missing, or it is a T5 directory but transformers/sentencepiece are
            not installed.
    """
    path = Path(path)
    if path.is_file():
        return WordTokenizer.load(path)
    if not path.is_dir():
        raise PolicyLoadError(f"tokenizer not found: {path} (expected tokenizer.json of a WordTokenizer or a "
                              "local t5-small tokenizer directory with spiece.model)")
    try:
        return _HFT5Tokenizer(path)
    except ImportError:
        raise PolicyLoadError(f"{path} is a T5 tokenizer directory but `transformers` and `sentencepiece` are "
                              "not installed; install them or pass pre-tokenised T5 ids") from None
    except (OSError, ValueError) as exc:
        raise PolicyLoadError(f"cannot load the T5 tokenizer from {path}: {exc}") from None
