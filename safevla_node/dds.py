"""Loopback-only DDS environment for every process this project starts.

Discovery traffic must never leave the machine in tests, CI, benchmarks and demos, and parallel runs must
not see each other: each run gets its own ROS_DOMAIN_ID. On a robot the caller's environment is kept.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path

__all__ = ["LOOPBACK_ENV", "DomainLease", "clear_zombie_shm_ports", "isolated_ros_env", "pick_domain_id"]

#: Variables that confine DDS discovery to the loopback interface (Jazzy/Kilted and Humble spellings).
LOOPBACK_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1"}

# Domain ids 1..101 are valid for every RMW on every platform; 0 is the default a user's robot likely uses.
_DOMAIN_RANGE = (1, 101)


#: Where Fast DDS keeps its shared-memory ports on Linux.
SHM_DIR = Path("/dev/shm")
#: Fast DDS numbers a domain's ports (UDP and shared-memory alike) from 7400 + 250 * domain, 250 of them.
_PORT_BASE, _PORTS_PER_DOMAIN = 7400, 250


def clear_zombie_shm_ports(domain_id: int, shm_dir: Path = SHM_DIR) -> list[int]:
    """Remove the Fast DDS shared-memory ports of ``domain_id`` whose owner is gone; returns their numbers.

    The criterion is Fast DDS's own (``fastdds shm clean``): a port's ``_el`` (or ``_sl``) file is locked while
    the process that opened the port lives. A process killed with SIGKILL leaves the port behind, and a new
    participant of the same index may reopen it and never be delivered large samples (eProsima/Fast-DDS#5053,
    #5469). Ports in use are left alone, and so are other domains'.
    """
    first = _PORT_BASE + _PORTS_PER_DOMAIN * domain_id
    removed = []
    for lock in sorted(shm_dir.glob("fastdds_port*_[es]l")):
        number = lock.name[len("fastdds_port"):-3]
        if not number.isdigit() or not first <= int(number) < first + _PORTS_PER_DOMAIN or _locked(lock):
            continue
        port = lock.name[:-3]
        for path in (lock, shm_dir / port, shm_dir / f"sem.{port}_mutex"):
            path.unlink(missing_ok=True)
        removed.append(int(number))
    return removed


def _locked(path: Path) -> bool:
    """Some process holds a lock on ``path`` (trying an exclusive one fails)."""
    try:
        with open(path, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


def pick_domain_id(seed: int | None = None) -> int:
    """A domain id for one run, drawn from the pid (or ``seed``) so concurrent runs rarely collide."""
    rng = random.Random(os.getpid() if seed is None else seed)
    return rng.randint(*_DOMAIN_RANGE)


def isolated_ros_env(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process: ``base`` (default: this process's) confined to loopback.

    The domain id is ``domain_id``, else the one already in ``base``, else a fresh one.
    """
    env = dict(os.environ if base is None else base)
    env.update(LOOPBACK_ENV)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    elif "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(pick_domain_id())
    return env


class DomainLease:
    """Exclusive use of one ROS_DOMAIN_ID on this machine, held through a lock file until released.

    Concurrent test runs, demos and benchmarks on one machine each lease a different domain, so their
    graphs never see each other. The lock dies with the process, so a killed run frees its domain.

    Without ``preferred``, a process's successive leases walk on through the ids instead of taking a freed
    one again: a graph must not inherit its predecessor's domain, where processes killed with SIGKILL leave
    Fast DDS shared-memory ports behind (named by domain and participant index) that a new participant of
    the same index may reopen and never be delivered large samples on (eProsima/Fast-DDS#5053). A lease also
    clears its domain's ports that earlier runs' killed processes left (``clear_zombie_shm_ports``). A killed
    subscriber can also pin a frame in its publisher's segment, which no cleaning here undoes: see
    ``CAMERA_SIZE`` in tests/hil/test_policy_loop.py.
    """

    LOCK_DIR = Path(tempfile.gettempdir()) / "safevla-ros-domains"
    _last_leased: int | None = None  # this process's latest lease without ``preferred``

    def __init__(self, preferred: int | None = None) -> None:
        self.LOCK_DIR.mkdir(parents=True, exist_ok=True)
        low, high = _DOMAIN_RANGE
        if preferred is not None:
            start = preferred
        else:
            start = pick_domain_id() if DomainLease._last_leased is None else DomainLease._last_leased + 1
        for offset in range(high - low + 1):
            candidate = low + (start - low + offset) % (high - low + 1)
            handle = open(self.LOCK_DIR / f"{candidate}.lock", "w")  # noqa: SIM115 (held until release)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.domain_id = candidate
            self._handle = handle
            clear_zombie_shm_ports(candidate)
            if preferred is None:
                DomainLease._last_leased = candidate
            return
        raise RuntimeError(f"all ROS domain ids {low}..{high} are leased on this machine (see {self.LOCK_DIR})")

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The loopback-only environment for this domain."""
        return isolated_ros_env(self.domain_id, base)

    def release(self) -> None:
        """Give the domain back."""
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()

    def __enter__(self) -> DomainLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
