"""A shutdown by rclpy's signal handler ends the bag nodes' spin cleanly however rclpy reports it."""

from __future__ import annotations

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from safevla_node.dds import DomainLease
from safevla_node.nodes.shutdown import ends_on_shutdown
from tests.ros_harness import ros_client


def test_a_spin_after_the_context_was_shut_down_ends_quietly(ros_domain: DomainLease) -> None:
    # The race the recorder met in CI: SIGTERM's handler shut the context down just before the executor built
    # its next wait set, which failed with an RCLError (exit status 1 instead of a finalised bag and 0).
    context = Context()
    rclpy.init(context=context, domain_id=ros_domain.domain_id)
    node = Node("shutdown_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        executor.spin_once(timeout_sec=0.01)
        context.shutdown()  # what the signal handler does, from outside the spin
        with pytest.raises(RuntimeError):
            executor.spin_once(timeout_sec=0.01)
        with ends_on_shutdown(context):
            executor.spin_once(timeout_sec=0.01)
    finally:
        node.destroy_node()
        context.try_shutdown()


def test_a_runtime_error_while_the_context_is_valid_still_fails(ros_domain: DomainLease) -> None:
    with ros_client(ros_domain) as client:
        with pytest.raises(RuntimeError, match="a real failure"), ends_on_shutdown(client.context):
            raise RuntimeError("a real failure")
        with ends_on_shutdown(client.context):
            raise KeyboardInterrupt
