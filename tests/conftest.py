"""Test-wide set-up: DDS confined to loopback, one leased ROS_DOMAIN_ID per test that touches DDS.

The variables are set here, at import, so no test can start rclpy or a node process before them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


#: Real recordings and goldens (rosbags, AI2-THOR output, SafeVLA checkpoint layout): ``../shared/data`` beside
#: the checkout, as CI lays it out; SAFEVLA_SHARED_DATA points elsewhere.
SHARED_DATA = Path(os.environ.get("SAFEVLA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; a test that needs it fails (never skips) when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder {SHARED_DATA} not found: clone next to shared/ or set SAFEVLA_SHARED_DATA")
    return SHARED_DATA
