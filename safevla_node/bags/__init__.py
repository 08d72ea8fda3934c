"""Bag tools, plain Python (no rclpy): read any rosbag2, record in splits, pace a replay, audit offline.

``reader`` opens bags robustly (``BagError`` names the file and the fix), ``typestore`` knows the message
types, ``writer`` records split bags that survive a SIGKILL up to their last split, ``replay`` computes
when each message is due, ``adapters`` turns decoded messages into the monitor core's types, ``audit``
runs the safety monitor over a bag and ``audit_report`` renders what it found. The rclpy adapters are
``safevla_node.nodes.recorder`` and ``safevla_node.nodes.replayer``; the CLI is ``safevla record|replay|audit``.
"""

from safevla_node.bags.audit import AuditConfig, AuditPolicy, load_monitor_config, run_audit
from safevla_node.bags.audit_report import AuditReport
from safevla_node.bags.reader import BagMessage, BagReader, TopicInfo, open_bag
from safevla_node.bags.replay import Pacer, ReplayConfig, ReplayEvent, ReplayPlan
from safevla_node.bags.writer import BagRecorder, RecordConfig

__all__ = [
    "AuditConfig",
    "AuditPolicy",
    "AuditReport",
    "BagMessage",
    "BagReader",
    "BagRecorder",
    "Pacer",
    "RecordConfig",
    "ReplayConfig",
    "ReplayEvent",
    "ReplayPlan",
    "TopicInfo",
    "load_monitor_config",
    "open_bag",
    "run_audit",
]
