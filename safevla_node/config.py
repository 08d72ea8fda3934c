"""YAML configuration as validated, frozen dataclasses.

Every config in the project is a frozen dataclass whose fields carry a ``doc`` metadata entry (used for ROS
parameter descriptors and the docs) and whose ``__post_init__`` checks ranges. ``from_mapping`` builds one
from plain YAML data, rejecting unknown keys and wrong types with an error that names the field, the value
and the file, so a typo in a robot profile fails at start-up instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from safevla_node.errors import ConfigError

__all__ = ["check_choice", "check_range", "field", "from_mapping", "load_yaml", "to_mapping"]

T = TypeVar("T")


def field(default: Any, doc: str, **kwargs: Any) -> Any:
    """A dataclass field with a documentation string (shown in ROS parameter descriptors)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple or a default_factory for mutable defaults")
    return dataclasses.field(default=default, metadata={"doc": doc}, **kwargs)


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (the message lists them in order)."""
    if value not in (valid := list(choices)):
        raise ConfigError(f"{name}={value!r} is not one of {valid}")


def check_range(name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (either bound may be None) and ``value`` is finite:
    no setting of this project means anything at infinity, and one (a horizon, a footprint) would overflow
    the arithmetic that uses it, or quietly disable a check (a tolerance, a decay time)."""
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"{name}={value!r} is out of range {bounds}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping.

    Raises:
        ConfigError: the file is missing, unreadable, not YAML, or not a mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    return data


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_mapping(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}={value!r} is not one of {list(args)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{where}={value!r} is not one of {[m.value for m in hint]}") from None
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``; missing keys take their defaults.

    Raises:
        ConfigError: an unknown key (with the valid ones listed), a wrong type, or a failed range check.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    prefix = f"{where}." if where else ""
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; valid keys: {sorted(fields)}")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None
    except TypeError as exc:  # a required field without default was not given
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def to_mapping(config: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (tuples become lists, enums their values), ready for YAML."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, Enum):
            return value.value
        return value

    return plain(config)
