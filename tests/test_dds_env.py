"""The DDS environment every process of ours runs in."""

import os

from safevla_node.dds import LOOPBACK_ENV, DomainLease, isolated_ros_env


def test_test_run_is_confined_to_loopback():
    for key, value in LOOPBACK_ENV.items():
        assert os.environ[key] == value
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 101


def test_isolated_env_overrides_a_wide_discovery_range():
    env = isolated_ros_env(7, base={"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "PATH": "/bin"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["ROS_LOCALHOST_ONLY"] == "1"
    assert env["ROS_DOMAIN_ID"] == "7"
    assert env["PATH"] == "/bin"


def test_two_leases_never_share_a_domain():
    with DomainLease(40) as first, DomainLease(40) as second:
        assert first.domain_id != second.domain_id
        freed = first.domain_id
    with DomainLease(40) as again:
        assert again.domain_id == freed


def test_a_process_never_leases_the_domain_it_just_freed():
    """Processes killed in one graph leave shared-memory ports in its domain: the next graph goes elsewhere."""
    with DomainLease() as first:
        freed = first.domain_id
    with DomainLease() as second, DomainLease() as third:
        assert freed not in (second.domain_id, third.domain_id)
        assert second.domain_id != third.domain_id
