"""Test-wide set-up: DDS confined to loopback, one leased ROS_DOMAIN_ID per test that touches DDS.

The variables are set here, at import, so no test can start rclpy or a node process before them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from safevla_node.dds import LOOPBACK_ENV, DomainLease

os.environ.update(LOOPBACK_ENV)
# The run's own domain, for anything that reads the environment directly; ROS tests lease their own below.
_RUN_LEASE = DomainLease()
os.environ["ROS_DOMAIN_ID"] = str(_RUN_LEASE.domain_id)
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def ros_domain() -> Iterator[DomainLease]:
    """A fresh DDS domain for one test, so nodes left by an earlier test can never answer it."""
    with DomainLease() as lease:
        yield lease
