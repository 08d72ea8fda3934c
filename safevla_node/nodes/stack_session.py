"""A node graph started for one orchestrating process, with an ``EpisodeObserver`` to steer it.

Shared by ``safevla demo`` and the through-ROS evaluation executor: the nodes of a stack profile start as
supervised processes (``StackLauncher``) in the caller's leased DDS domain, an rclpy context of this
process holds the observer, and leaving the context stops everything, whatever happened.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context

import safevla_node

from safevla_node.dds import DomainLease
from safevla_node.launcher import StackLauncher
from safevla_node.nodes.episode_observer import EpisodeObserver
from safevla_node.stack import NodeLaunch, load_stack

__all__ = ["StackSession", "stack_launches", "stack_session"]


def stack_launches(profile: str, overrides: Mapping[str, Mapping[str, Any]], *,
                   nodes: Sequence[str] | None = None, arguments: Mapping[str, str] | None = None) -> list[NodeLaunch]:
    """The nodes of ``profile`` (only ``nodes`` when given) with per-node parameter ``overrides``.

    Raises:
        ConfigError: unknown profile or launch argument (from ``StackDescription.resolve``).
    """
    launches = load_stack().resolve(profile, arguments)
    if nodes is not None:
        launches = [n for n in launches if n.name in nodes]
    return [replace(n, parameters={**n.parameters, **overrides.get(n.name, {})}) for n in launches]


@dataclass
class StackSession:
    """A running graph: its supervisor and the observer steering it."""

    launcher: StackLauncher
    observer: EpisodeObserver


@contextmanager
def stack_session(launches: Sequence[NodeLaunch], lease: DomainLease, log_dir: Path,
                  ready_timeout_s: float = 120.0, steer_policy: bool = False) -> Iterator[StackSession]:
    """Start ``launches`` in ``lease``'s domain (node logs in ``log_dir``) and wait until the bridge's and
    the monitor's services answer (and the policy node's, with ``steer_policy``: the observer then sets its
    parameters too).

    Raises:
        SafeVLAError: the services did not appear within ``ready_timeout_s``.
    """
    env = lease.env()
    # The nodes run the same code as this process (a source checkout may differ from an installed copy).
    source_root = str(Path(safevla_node.__file__).resolve().parents[1])
    env["PYTHONPATH"] = f"{source_root}:{env['PYTHONPATH']}" if env.get("PYTHONPATH") else source_root
    # Several node processes share the CPU; one intra-op thread each keeps torch from oversubscribing it,
    # unless the caller chose (an evaluation worker process sets its share of the cores: the graph's nodes
    # take turns in the discrete loop, so they share it without spinning against each other).
    env.setdefault("OMP_NUM_THREADS", "1")
    launcher = StackLauncher(launches, env, log_dir)
    launcher.start()
    context = Context()
    observer: EpisodeObserver | None = None
    try:
        rclpy.init(context=context, domain_id=lease.domain_id)
        observer = EpisodeObserver(context, policy="policy_node" if steer_policy else None)
        observer.wait_for_stack(timeout=ready_timeout_s)
        yield StackSession(launcher, observer)
    finally:
        if observer is not None:
            observer.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
        launcher.shutdown()
