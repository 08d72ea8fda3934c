"""Run real nodes in their own processes and talk to them over DDS from the test process.

Nothing here is mocked: nodes are started with ``python -m <module> --ros-args ...`` exactly as ``ros2 run``
would start them, in the leased domain, on loopback only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from safevla_node.dds import DomainLease

REPO_ROOT = Path(__file__).resolve().parents[1]


def _param_arg(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "[" + ",".join(_param_arg("", v).split(":=", 1)[1] for v in value) + "]"
    elif isinstance(value, str):
        text = f"'{value}'"
    else:
        text = repr(value)
    return f"{name}:={text}"


class NodeProcess:
    """A node running in a child process; its output is captured for failure messages."""

    def __init__(
        self,
        module: str,
        lease: DomainLease,
        params: Mapping[str, Any] | None = None,
        params_file: str | Path | None = None,
        remap: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        args = [sys.executable, "-u", "-m", module, "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        for name, value in (params or {}).items():
            args += ["-p", _param_arg(name, value)]
        for src, dst in (remap or {}).items():
            args += ["-r", f"{src}:={dst}"]
        env = lease.env()
        env["PYTHONPATH"] = f"{REPO_ROOT}:{env.get('PYTHONPATH', '')}".rstrip(":")
        env["PYTHONFAULTHANDLER"] = "1"  # a crash, or ``dump_stacks``, prints every thread's Python stack
        self.log_path = log_path or Path(f"/tmp/safevla-test-{module.rsplit('.', 1)[-1]}-{time.time_ns()}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """Everything the node printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def dump_stacks(self) -> str:
        """SIGABRT a hung node: the fault handler prints where each thread is; returns the node's output."""
        if self.alive():
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return self.output()

    def kill(self) -> None:
        """SIGKILL: the node gets no chance to clean up (a crash)."""
        self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGINT then wait, like Ctrl-C; SIGKILL if it does not exit. Returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


class RosTestClient:
    """An rclpy context of its own in the test process, with a node to publish and subscribe from."""

    def __init__(self, lease: DomainLease, name: str = "test_client") -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=lease.domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, deadline - time.monotonic())))

    def spin_until(self, predicate: Callable[[], bool], timeout: float, message: str = "") -> None:
        """Process callbacks until ``predicate()`` holds.

        Raises:
            AssertionError: not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for: {message or predicate}")
            self.executor.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@contextmanager
def ros_client(lease: DomainLease, name: str = "test_client") -> Iterator[RosTestClient]:
    """A RosTestClient that is always closed."""
    client = RosTestClient(lease, name)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def running_node(module: str, lease: DomainLease, **kwargs: Any) -> Iterator[NodeProcess]:
    """A NodeProcess that is always stopped; its output is printed if the test fails."""
    proc = NodeProcess(module, lease, **kwargs)
    try:
        yield proc
    except BaseException:
        print(f"--- output of {module} ---\n{proc.output()}")
        raise
    finally:
        proc.stop()
