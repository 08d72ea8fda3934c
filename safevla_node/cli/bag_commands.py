"""``safevla record``, ``safevla replay`` and ``safevla audit``.

record and replay need rclpy and import their node lazily; audit runs on a machine without ROS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safevla_node.bags.replay import ReplayConfig
from safevla_node.bags.writer import COMPRESSION_MODES, STORAGES, RecordConfig
from safevla_node.cli import add_subcommand
from safevla_node.errors import ConfigError

__all__: list[str] = []


def _configure_record(parser: argparse.ArgumentParser) -> None:
    defaults = RecordConfig(output="unset")
    parser.add_argument("-o", "--output", required=True, help="bag directory to create (must not exist)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--topics", nargs="+", metavar="TOPIC", help="topics to record (default: the stack's set)")
    chosen.add_argument("-a", "--all", action="store_true", help="record every topic of the graph")
    parser.add_argument("--cameras", action="store_true", help="add the Stretch camera topics to the default set")
    parser.add_argument("-s", "--storage", choices=sorted(STORAGES), default=defaults.storage)
    parser.add_argument("--compression", choices=sorted(COMPRESSION_MODES), default=defaults.compression,
                        help="zstd compression mode (storage: MCAP chunk compression)")
    parser.add_argument("--max-split-bytes", type=int, default=defaults.max_split_bytes,
                        help="split size in bytes (0: no limit)")
    parser.add_argument("--max-split-duration", type=float, default=defaults.max_split_duration_s,
                        help="split duration in s (0: no limit); a SIGKILL loses at most one split")


def _record(args: argparse.Namespace) -> int:
    from safevla_node.nodes.recorder import CAMERA_TOPICS, DEFAULT_TOPICS, run  # noqa: PLC0415 (needs rclpy)

    config = RecordConfig(output=args.output, storage=args.storage, compression=args.compression,
                          max_split_bytes=args.max_split_bytes, max_split_duration_s=args.max_split_duration)
    topics = None if args.all else list(args.topics or DEFAULT_TOPICS)
    if topics is not None and args.cameras:
        topics += CAMERA_TOPICS
    return run(config, topics, args=[])


def _configure_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory")
    parser.add_argument("-r", "--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("-l", "--loop", action="store_true", help="play forever")
    parser.add_argument("--clock", type=float, nargs="?", const=40.0, default=0.0, metavar="HZ",
                        help="publish /clock at HZ (default 40) from the bag's receive times")
    parser.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="topics to play (default: all)")
    parser.add_argument("-m", "--remap", nargs="+", default=[], metavar="FROM:=TO", help="topic remappings")
    parser.add_argument("--start-offset", type=float, default=0.0, help="skip this much of the bag (s)")
    parser.add_argument("-d", "--delay", type=float, default=0.0,
                        help="wait this long after creating publishers, before the first message (s)")
    parser.add_argument("-w", "--wait-for-subscribers", type=float, default=0.0, metavar="S",
                        help="first wait up to S seconds until every played topic has a subscriber")


def _replay(args: argparse.Namespace) -> int:
    from safevla_node.nodes.replayer import run  # noqa: PLC0415 (needs rclpy)

    config = ReplayConfig(rate=args.rate, loop=args.loop, clock_hz=args.clock, topics=tuple(args.topics),
                          remap=tuple(args.remap), start_offset_s=args.start_offset)
    return run(args.bag, config, delay_s=args.delay, wait_for_subscribers_s=args.wait_for_subscribers, args=[])


add_subcommand("record", "record the stack's topics to a rosbag2 (MCAP or sqlite3)", _configure_record, _record)
add_subcommand("replay", "publish a bag's messages with their original timing and QoS", _configure_replay, _replay)


def _configure_audit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory")
    parser.add_argument("-o", "--output", help="folder for audit.md, audit.json and timeline.png "
                        "(default: print the markdown only)")
    parser.add_argument("--monitor-config", help="safety monitor parameter YAML (layout of "
                        "config/safety_monitor.yaml); "
                        "default: the monitor's built-in defaults")
    parser.add_argument("--command-topic", help="base command topic to judge (default: the first of "
                        "/cmd_vel_in, /cmd_vel, /cmd_vel_smoothed in the bag)")
    parser.add_argument("--checkpoint", help="policy checkpoint to audit too (needs the policy runtime, see "
                        "safevla_node.bags.audit.AuditPolicy)")


def _audit(args: argparse.Namespace) -> int:
    from safevla_node.bags.audit import AuditConfig, load_monitor_config, run_audit  # noqa: PLC0415

    if args.checkpoint:
        raise ConfigError(
            f"--checkpoint {args.checkpoint!r}: the policy runtime is not part of this build yet; audit without "
            "it, or call safevla_node.bags.audit.run_audit(bag, policy=...) with an object that has "
            "propose(now, latest) (AuditPolicy)")
    config = AuditConfig(command_topics=(args.command_topic,)) if args.command_topic else AuditConfig()
    monitor = load_monitor_config(args.monitor_config) if args.monitor_config else None
    report = run_audit(args.bag, config, monitor)
    if args.output:
        for kind, path in report.write(Path(args.output)).items():
            print(f"{kind}: {path}")
    else:
        print(report.to_markdown())
    return 0


add_subcommand("audit", "run the safety monitor over a bag, offline and deterministic", _configure_audit, _audit)
