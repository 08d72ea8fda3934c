"""The DDS environment every process of ours runs in."""

import fcntl
import os
from pathlib import Path

from safevla_node.dds import LOOPBACK_ENV, DomainLease, clear_zombie_shm_ports, isolated_ros_env


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


def test_a_lease_clears_only_its_domains_ports_whose_owner_is_gone(tmp_path: Path) -> None:
    # Fast DDS port files: the segment, its "_el" lock (flocked while the owner lives) and the mutex.
    def port(number: int) -> Path:
        for name in (f"fastdds_port{number}", f"fastdds_port{number}_el", f"sem.fastdds_port{number}_mutex"):
            (tmp_path / name).write_bytes(b"")
        return tmp_path / f"fastdds_port{number}_el"

    domain = 7  # ports 9150..9399
    port(9161)  # a participant killed with SIGKILL left it
    live = port(9163)
    port(9411)  # domain 8's
    with open(live, "ab") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its owner is alive
        assert clear_zombie_shm_ports(domain, tmp_path) == [9161]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not any("9161" in name for name in left)
    assert [name for name in left if "9163" in name or "9411" in name] == [
        "fastdds_port9163", "fastdds_port9163_el", "fastdds_port9411", "fastdds_port9411_el",
        "sem.fastdds_port9163_mutex", "sem.fastdds_port9411_mutex"]
