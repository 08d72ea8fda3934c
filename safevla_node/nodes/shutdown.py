"""How the bag nodes, which keep rclpy's own signal handlers, tell a signal's shutdown from a failure.

The recorder and the replayer let rclpy handle SIGINT and SIGTERM: the handler shuts the context down from
outside the spin, which then ends between two callbacks. A bag write or a paced publish is never cut in half,
unlike with a KeyboardInterrupt raised wherever the main thread happens to be (``node_main``'s way, for
nodes that must publish last words). The shutdown can land just before the executor builds its next wait
set. The executor then fails on the invalid context with an ``RCLError`` (a ``RuntimeError``) instead of
``ExternalShutdownException`` (ros2/rclpy#1166; ros2cli catches it the same way). A publish after the
shutdown fails the same way. Once the context is shut down, that is the same clean end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException

__all__ = ["ends_on_shutdown"]


@contextmanager
def ends_on_shutdown(context: Context | None = None) -> Iterator[None]:
    """End the block quietly on Ctrl-C or a shutdown of ``context`` (default: rclpy's), however rclpy reports
    it. A ``RuntimeError`` while the context is still valid is a real failure and propagates."""
    try:
        yield
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok(context=context):
            raise
