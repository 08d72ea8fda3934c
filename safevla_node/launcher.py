"""``safevla up``: start the stack's nodes as separate processes, supervise them, stop cleanly.

The same nodes, parameters and remappings as ``ros2 launch`` (both read ``safevla_node.stack``), for machines
without ros2 launch. Supervision is fail-stop: when a node dies the launcher says which and how, makes the
robot stop (``nodes/stop_robot.py`` publishes zero velocity, covering the case where the safety monitor itself
died) and then either restarts the node (``respawn``) or shuts the stack down. The stop publisher runs armed
beside the nodes from the start (discovered before it is needed) and is signalled on a death; a one-shot
one is started if it is gone. Plain Python: no rclpy here.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from safevla_node.stack import NodeLaunch

__all__ = ["NodeExit", "StackLauncher"]

LOG = logging.getLogger(__name__)
STOP_ROBOT_MODULE = "safevla_node.nodes.stop_robot"
#: How long the stop publisher (``safevla_node.nodes.stop_robot``) publishes zeros per stop.
PUBLISH_FOR_S = 1.0


@dataclass(frozen=True)
class NodeExit:
    """A node process that ended while the stack was meant to run."""

    name: str
    returncode: int
    log_tail: str

    def describe(self) -> str:
        """One line for the operator: the node, how it ended, its last output."""
        how = f"killed by signal {-self.returncode}" if self.returncode < 0 else f"exit code {self.returncode}"
        return f"node '{self.name}' stopped ({how}); last output:\n{self.log_tail}"


class _Child:
    def __init__(self, launch: NodeLaunch, env: Mapping[str, str], log_dir: Path) -> None:
        self.launch = launch
        self.log_path = log_dir / f"{launch.name}.log"
        self._env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", self.launch.module, *self.launch.ros_args()],
                env=self._env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"


class StackLauncher:
    """Supervises one stack of node processes.

    Args:
        launches: the nodes, from ``StackDescription.resolve``.
        env: the environment of every node (``DomainLease.env()`` confines DDS to loopback).
        log_dir: one ``<node>.log`` per node.
        respawn: restart a node that died (after stopping the robot) instead of shutting down.
        stop_remappings: remappings for the stop publisher (so it reaches the robot's velocity topic).
    """

    def __init__(
        self,
        launches: Sequence[NodeLaunch],
        env: Mapping[str, str],
        log_dir: Path,
        respawn: bool = False,
        stop_remappings: Mapping[str, str] | None = None,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self._children = [_Child(launch, env, log_dir) for launch in launches]
        self._env = dict(env)
        self._log_dir = log_dir
        self._respawn = respawn
        self._stop_remappings = dict(stop_remappings or {})
        self._armed_stop: subprocess.Popen[bytes] | None = None
        self.exits: list[NodeExit] = []

    @property
    def node_names(self) -> list[str]:
        """Names of the supervised nodes, in start order."""
        return [c.launch.name for c in self._children]

    def start(self) -> None:
        """Start every node, and the armed stop publisher."""
        with open(self._log_dir / "stop_robot.log", "ab") as log:
            self._armed_stop = subprocess.Popen(self._stop_command(armed=True), env=self._env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        for child in self._children:
            child.start()
            LOG.info("started %s (pid %d, log %s)", child.launch.name, child.proc.pid, child.log_path)

    def pid(self, name: str) -> int:
        """Process id of a running node (for tests and operators)."""
        return next(c.proc.pid for c in self._children if c.launch.name == name and c.proc)

    def poll(self) -> list[NodeExit]:
        """Check every node once; handle the ones that died. Returns the deaths seen by this call."""
        died = []
        for child in self._children:
            if child.proc is None or child.proc.poll() is None:
                continue
            event = NodeExit(child.launch.name, child.proc.returncode, child.tail())
            LOG.error(event.describe())
            died.append(event)
            self.exits.append(event)
        if died:
            self.stop_robot()
            if self._respawn:
                for event in died:
                    child = next(c for c in self._children if c.launch.name == event.name)
                    LOG.warning("restarting %s", event.name)
                    child.start()
        return died

    def _stop_command(self, armed: bool) -> list[str]:
        args = [sys.executable, "-u", "-m", STOP_ROBOT_MODULE, *(["--armed"] if armed else []), "--ros-args"]
        for src, dst in self._stop_remappings.items():
            args += ["-r", f"{src}:={dst}"]
        return args

    def stop_robot(self) -> None:
        """Publish zero velocity for a moment (blocks about one second): through the armed stop publisher,
        or a one-shot one when that is gone."""
        if self._armed_stop is not None and self._armed_stop.poll() is None:
            self._armed_stop.send_signal(signal.SIGUSR1)
            time.sleep(PUBLISH_FOR_S + 0.2)
            return
        with open(self._log_dir / "stop_robot.log", "ab") as log:
            subprocess.run(self._stop_command(armed=False), env=self._env, stdout=log, stderr=subprocess.STDOUT,
                           timeout=30, check=False)

    def run(self, until: Callable[[], bool] | None = None, period_s: float = 0.1) -> int:
        """Supervise until ``until()`` holds, a node dies (without respawn) or Ctrl-C; then shut down.

        Returns:
            0 on a clean stop, 1 if a node died.
        """
        interrupted = False
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            while until is None or not until():
                if self.poll() and not self._respawn:
                    break
                time.sleep(period_s)
        except KeyboardInterrupt:
            interrupted = True
            LOG.info("interrupted: shutting the stack down")
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.shutdown()
        return 1 if self.exits and not interrupted and not self._respawn else 0

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """SIGINT every node (their clean exit publishes a last zero command), SIGKILL what lingers."""
        running = [c for c in self._children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            child.proc.send_signal(signal.SIGINT)
        if self._armed_stop is not None and self._armed_stop.poll() is None:
            self._armed_stop.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for child in running:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                LOG.warning("%s did not exit within %.0f s: killing it", child.launch.name, timeout_s)
                child.proc.kill()
                child.proc.wait()
        if self._armed_stop is not None:
            try:
                self._armed_stop.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._armed_stop.kill()
                self._armed_stop.wait()
            self._armed_stop = None
