"""``safevla up sim|robot|replay``: the stack as supervised processes, for machines without ros2 launch.

Starts the same nodes with the same parameters and remappings as ``ros2 launch safevla_node <profile>.launch.py``
(both read ``config/stack.yaml``), confined to loopback DDS. The sim and replay profiles lease a fresh
ROS_DOMAIN_ID unless ``--domain-id`` is given; the robot profile keeps the caller's (it must match the
driver's). A node that dies is reported and the robot is stopped; Ctrl-C shuts everything down cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from safevla_node.cli import add_subcommand
from safevla_node.dds import DomainLease, isolated_ros_env
from safevla_node.launcher import StackLauncher
from safevla_node.stack import LAUNCH_ARGUMENTS, load_stack

__all__ = ["configure", "run"]

LOG = logging.getLogger(__name__)
HELP = "start the stack (sim: simulator + monitor + policy; robot: monitor + policy on a Stretch; replay)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``safevla up``."""
    parser.add_argument("profile", choices=sorted(load_stack().profiles), help="which graph to start")
    for argument in LAUNCH_ARGUMENTS:
        parser.add_argument(f"--{argument.name}", default=None, help=f"{argument.description} "
                            f"(default: {argument.default or 'empty'})")
    parser.add_argument("--respawn", action="store_true", help="restart a node that dies instead of stopping")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: leased, or the "
                        "caller's for the robot profile)")
    parser.add_argument("--log-dir", type=Path, default=None, help="per-node logs (default: runs/up-<time>)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")


def run(args: argparse.Namespace) -> int:
    """Start, supervise, stop; exit status 1 if a node died."""
    arguments = {a.name: getattr(args, a.name) for a in LAUNCH_ARGUMENTS if getattr(args, a.name) is not None}
    launches = load_stack().resolve(args.profile, arguments)
    log_dir = args.log_dir or Path("runs") / f"up-{time.strftime('%Y%m%d-%H%M%S')}"
    lease = None
    if args.domain_id is not None:
        env = isolated_ros_env(args.domain_id)
    elif args.profile == "robot":
        env = isolated_ros_env(None, dict(os.environ))
    else:
        lease = DomainLease()
        env = lease.env()
    try:
        launcher = StackLauncher(launches, env, log_dir, respawn=args.respawn,
                                 stop_remappings=launches[0].remappings)
        print(f"starting {', '.join(launcher.node_names)} (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, logs in {log_dir})")
        launcher.start()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        code = launcher.run(until=None if deadline is None else (lambda: time.monotonic() >= deadline))
        for event in launcher.exits:
            print(event.describe())
        return code
    finally:
        if lease is not None:
            lease.release()


add_subcommand("up", HELP, configure, run)
