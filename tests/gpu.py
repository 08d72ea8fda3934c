"""Marks of the tests that need a CUDA GPU: skipped on CPU-only machines (CI, laptops), selected on a GPU
machine with ``pytest -m cuda``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
import torch

T = TypeVar("T", bound=Callable[..., object])

CUDA_MARKS = (pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))


def requires_cuda(test: T) -> T:
    """Decorator form of ``CUDA_MARKS`` for a whole test function."""
    for mark in CUDA_MARKS:
        test = mark(test)
    return test
