"""The cores' ``logging`` records, told through the node's ROS logger.

Cores log with ``logging`` (they never import rclpy); in a node process nothing would show their records but
Python's last-resort handler, which prints WARNING and above to stderr, unformatted, and never reaches
``/rosout``. ``bridge_core_logging`` routes them into the ROS logger of the node, so a node's log (console,
log file, ``/rosout``) tells what its core decided: an episode starting, a proposal aborted, a result dropped.
The Python threshold follows the ROS logger's level, so ``--ros-args --log-level debug`` shows the cores'
debug records too.

rclpy keys its logging context on the calling line and refuses a second severity from the same line, so
each severity is forwarded from a line of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.logging import LoggingSeverity, get_logger

__all__ = ["bridge_core_logging"]

_PYTHON_LEVEL = {
    LoggingSeverity.UNSET: logging.INFO,  # rcutils' default level
    LoggingSeverity.DEBUG: logging.DEBUG,
    LoggingSeverity.INFO: logging.INFO,
    LoggingSeverity.WARN: logging.WARNING,
    LoggingSeverity.ERROR: logging.ERROR,
    LoggingSeverity.FATAL: logging.CRITICAL,
}


class _RosLogHandler(logging.Handler):
    """Forwards each record to one ROS logger, prefixed with the core logger's name."""

    def __init__(self, logger: RcutilsLogger) -> None:
        super().__init__()
        self._logger = logger
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.CRITICAL:
                self._logger.fatal(message)
            elif record.levelno >= logging.ERROR:
                self._logger.error(message)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(message)
            elif record.levelno >= logging.INFO:
                self._logger.info(message)
            else:
                self._logger.debug(message)
        except Exception:  # noqa: BLE001 (logging must never take the node down)
            self.handleError(record)


@contextmanager
def bridge_core_logging(name: str) -> Iterator[None]:
    """While inside, records of every Python logger go to the ROS logger ``name`` (the node's name).

    Call after ``rclpy.init`` (the ROS logger's level comes from the command line's ``--log-level``).
    """
    ros_logger = get_logger(name)
    handler = _RosLogHandler(ros_logger)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(_PYTHON_LEVEL.get(LoggingSeverity(ros_logger.get_effective_level()), logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
