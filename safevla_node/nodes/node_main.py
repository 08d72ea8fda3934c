"""The one ``main()`` shape every node of the stack shares (APIs common to Humble, Jazzy and Kilted).

rclpy's own signal handlers are off: Ctrl-C and SIGTERM (what launchers send) raise KeyboardInterrupt while
the context is still valid, so a node can still publish its last words (the monitor's final zero twist)
before shutting down. The executor wakes at least every ``SIGNAL_POLL_S`` so a signal is handled even when
nothing else happens (under use_sim_time without /clock no timer fires). An error that makes a node unusable
at start-up (a bad parameter, a missing checkpoint) is logged as FATAL with its message and exits with 1.
The cores' ``logging`` records go to the node's ROS logger (``log_bridge``) for the node's whole life.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from safevla_node.errors import ConfigError
from safevla_node.nodes.log_bridge import bridge_core_logging

__all__ = ["SIGNAL_POLL_S", "interrupt", "run_node"]

#: Longest wait for work before the executor returns to Python.
SIGNAL_POLL_S = 0.1

N = TypeVar("N", bound=Node)


def interrupt(signum: int, _frame: object) -> None:
    """SIGTERM handler: raise KeyboardInterrupt like Ctrl-C, so ``finally`` blocks still run."""
    raise KeyboardInterrupt(f"signal {signum}")


def run_node(
    make_node: Callable[[], N],
    name: str,
    args: list[str] | None = None,
    fatal: Mapping[type[Exception], str] | None = None,
    on_exit: Callable[[N], None] | None = None,
) -> int:
    """Init rclpy, build the node, spin until Ctrl-C/SIGTERM, clean up; returns the exit status.

    Args:
        make_node: builds the node (after rclpy.init).
        name: logger name for start-up failures.
        args: command-line arguments (``--ros-args ...``).
        fatal: start-up exceptions and the words that introduce them (default: invalid parameter).
        on_exit: last words of the node (still with a valid context when shutdown came from a signal).
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, interrupt)
    with bridge_core_logging(name):
        return _spin(make_node, name, dict(fatal or {ConfigError: "invalid parameter"}), on_exit)


def _spin(make_node: Callable[[], N], name: str, fatal: Mapping[type[Exception], str],
          on_exit: Callable[[N], None] | None) -> int:
    """``run_node`` after rclpy.init: build, spin, clean up, shut down."""
    node: N | None = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok():
            executor.spin_once(timeout_sec=SIGNAL_POLL_S)
    except tuple(fatal) as exc:  # type: ignore[misc]
        words = next(w for t, w in fatal.items() if isinstance(exc, t))
        get_logger(name).fatal(f"{words}: {exc}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if on_exit is not None:
                on_exit(node)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
