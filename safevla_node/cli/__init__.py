"""The ``safevla`` command: one argparse subcommand per tool.

To add a subcommand, write a module that calls ``add_subcommand`` at import time and list it in
``COMMAND_MODULES``. Handlers return the exit code; a ``SafeVLAError`` becomes ``error: <message>`` and
exit code 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

from safevla_node.errors import SafeVLAError

__all__ = ["COMMAND_MODULES", "add_subcommand", "build_parser", "main"]

#: Modules whose import registers subcommands.
COMMAND_MODULES: tuple[str, ...] = (
    "safevla_node.cli.bag_commands",
    "safevla_node.cli.compare_command",
    "safevla_node.cli.demo_command",
    "safevla_node.cli.eval_command",
    "safevla_node.cli.explain_command",
    "safevla_node.cli.train_command",
    "safevla_node.cli.up_command",
)

Configure = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Configure, Handler]] = {}


def add_subcommand(name: str, help_text: str, configure: Configure, handler: Handler) -> None:
    """Register ``safevla <name>``: ``configure`` adds its arguments, ``handler`` runs it."""
    if name in _COMMANDS:
        raise ValueError(f"subcommand {name!r} is registered twice")
    _COMMANDS[name] = (help_text, configure, handler)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="safevla", description="SafeVLA ROS 2 tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, handler) in sorted(_COMMANDS.items()):
        command = sub.add_parser(name, help=help_text, description=help_text)
        configure(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``safevla`` console script."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SafeVLAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
