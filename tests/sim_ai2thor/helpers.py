"""Comparison helper for action dicts (floats compared to 9 decimals, nested)."""

from __future__ import annotations

from typing import Any


def rounded(value: Any) -> Any:
    """``value`` with every float rounded to 9 decimals, so nested dicts compare with ==."""
    if isinstance(value, float):
        return round(value, 9) + 0.0
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value
