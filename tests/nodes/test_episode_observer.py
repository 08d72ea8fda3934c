"""The episode observer's wait for a connected discrete loop, against a real sim_bridge process over DDS: with
no safety monitor to acknowledge the bridge's resets it resets again until its timeout, then says what is
missing. (With a monitor, every through-ROS evaluation graph passes through the same wait.)"""

from __future__ import annotations

import pytest
import rclpy
from rclpy.context import Context

from safevla_node.errors import SafeVLAError
from safevla_node.nodes.episode_observer import EpisodeObserver
from tests.ros_harness import running_node

pytestmark = pytest.mark.ros

PARAMS = {"task": "objectnav", "seed": 0, "render": False, "action_execution": "discrete", "real_time_factor": 5.0}


def test_without_a_monitor_the_bridge_is_reset_until_the_timeout_and_the_error_names_the_monitor(ros_domain):
    with running_node("safevla_node.nodes.sim_bridge", ros_domain, params=PARAMS):
        context = Context()
        rclpy.init(context=context, domain_id=ros_domain.domain_id)
        observer = EpisodeObserver(context)
        try:
            observer.spin_until(lambda: observer._reset.service_is_ready(), 60, "the bridge's ~/reset")
            with pytest.raises(SafeVLAError, match="safety monitor did not acknowledge a reset of the bridge"):
                observer.wait_for_monitor(timeout=2.5, retry_s=1.0)
            assert observer.trace.status["monitor_acknowledged"] is False
            assert observer.trace.status["episode"] >= 3  # the start-up episode and at least two resets
        finally:
            observer.destroy_node()
            rclpy.shutdown(context=context)
