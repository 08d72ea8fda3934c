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

__all__ = ["LOOPBACK_ENV", "DomainLease", "isolated_ros_env", "pick_domain_id"]

#: Variables that confine DDS discovery to the loopback interface (Jazzy/Kilted and Humble spellings).
LOOPBACK_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1"}

# Domain ids 1..101 are valid for every RMW on every platform; 0 is the default a user's robot likely uses.
_DOMAIN_RANGE = (1, 101)


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
    the same index may reopen and never be delivered large samples on (eProsima/Fast-DDS#5053, #5469: a
    respawned policy node got odometry but no camera image for 90 s).
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
