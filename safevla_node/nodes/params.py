"""Config dataclasses as ROS parameters: declare every field, read them back, validate updates.

Every leaf field of a config dataclass (``safevla_node.config``) becomes one parameter whose descriptor
carries the field's ``doc``; nested dataclasses become dotted names (``source_timeout_s.scan``), which is
also how a nested mapping in a ``--params-file`` YAML arrives. Values are read back through
``config.from_mapping``, so a bad value fails with the same readable error (field, value, range) as a bad
YAML file, and a runtime ``ros2 param set`` is validated against the whole config before it is accepted.

Parameters are declared with dynamic typing on purpose: rclpy's static typing would reject ``20`` for a
float field with a type error before our validation could name the field and its range.
"""

from __future__ import annotations

import array
import dataclasses
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from enum import Enum
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from safevla_node.config import from_mapping
from safevla_node.errors import ConfigError

__all__ = ["config_from_parameters", "declare_config", "flatten_fields", "read_config", "watch_config"]

T = TypeVar("T")


def flatten_fields(cls: type, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """(dotted name, plain default, doc) of every leaf field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        has_default = f.default is not dataclasses.MISSING
        default = f.default if has_default else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(hints[f.name]):
            yield from flatten_fields(hints[f.name], f"{name}.")
        else:
            yield name, _plain(default), f.metadata.get("doc", "")


def _plain(value: Any) -> Any:
    """A value rclpy can hold: tuples become lists, enums their values."""
    if isinstance(value, (tuple, list, array.array)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def config_from_parameters(cls: type[T], values: Mapping[str, Any]) -> T:
    """Build ``cls`` from dotted parameter names and values.

    Raises:
        ConfigError: a value fails the config's validation (the message names the parameter).
    """
    lists = {name for name, default, _ in flatten_fields(cls) if isinstance(default, list)}
    nested: dict[str, Any] = {}
    for name, value in values.items():
        if value is None and name in lists:
            value = []  # rcl's YAML parser cannot type an empty sequence: `[]` in a parameter file arrives unset
        *parents, leaf = name.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _plain(value)
    return from_mapping(cls, nested)


def declare_config(node: Node, cls: type, read_only: Collection[str] = ()) -> None:
    """Declare every field of ``cls`` as a parameter of ``node`` with its doc as description.

    ``read_only`` names parameters that only take effect at start-up (e.g. a timer rate).
    """
    unknown = set(read_only) - {name for name, _, _ in flatten_fields(cls)}
    if unknown:
        raise ValueError(f"read_only names unknown parameters {sorted(unknown)}")
    for name, default, doc in flatten_fields(cls):
        descriptor = ParameterDescriptor(name=name, description=doc, read_only=name in read_only,
                                         dynamic_typing=True)
        node.declare_parameter(name, default, descriptor)


def read_config(node: Node, cls: type[T]) -> T:
    """The config held by the declared parameters of ``node``.

    Raises:
        ConfigError: a parameter value fails validation.
    """
    names = [name for name, _, _ in flatten_fields(cls)]
    return config_from_parameters(cls, {p.name: p.value for p in node.get_parameters(names)})


def watch_config(node: Node, cls: type[T], apply: Callable[[T], None]) -> None:
    """Validate every runtime parameter change against the whole config; call ``apply`` when it passes.

    A change that fails validation is rejected with the validation message as the reason, so
    ``ros2 param set`` prints why, and the running config is untouched.
    """
    names = {name for name, _, _ in flatten_fields(cls)}

    def on_set(parameters: list[Parameter]) -> SetParametersResult:
        relevant = [p for p in parameters if p.name in names]
        if not relevant:
            return SetParametersResult(successful=True)
        values = {p.name: p.value for p in node.get_parameters(sorted(names))}
        values.update({p.name: p.value for p in relevant})
        try:
            config = config_from_parameters(cls, values)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        apply(config)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
