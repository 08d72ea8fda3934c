"""Where the package's data files (config/, launch/) are, however it was installed.

Three layouts: a source checkout (config/ beside the packages), a colcon/ament install
(share/safevla_node/ found through the ament index) and a pip install (data files under sys.prefix/share).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from safevla_node.errors import ConfigError

__all__ = ["PACKAGE_NAME", "config_path", "share_dir"]

PACKAGE_NAME = "safevla_node"


def _ament_share() -> Path | None:
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE_NAME))
    except (ImportError, LookupError, OSError):  # no ament index, package not in it, AMENT_PREFIX_PATH unset
        return None


@cache
def share_dir() -> Path:
    """The folder that holds config/ and launch/: the source checkout first, then the ament index, then pip's.

    Raises:
        ConfigError: no layout has them (a broken install).
    """
    looked = []
    for find in (lambda: Path(__file__).resolve().parents[1], _ament_share,
                 lambda: Path(sys.prefix) / "share" / PACKAGE_NAME):
        folder = find()
        if folder is None:
            continue
        if (folder / "config" / "stack.yaml").is_file():
            return folder
        looked.append(str(folder))
    raise ConfigError(
        f"cannot find {PACKAGE_NAME}'s config/ folder (looked in {looked}); "
        "reinstall the package (`make setup`, or `colcon build` in ros2_ws/)"
    )


def config_path(name: str) -> Path:
    """A file under config/ (``name`` may be a relative path like ``robots/stretch3.yaml``).

    Raises:
        ConfigError: the file does not exist, listing what does.
    """
    path = share_dir() / "config" / name
    if not path.is_file():
        config_dir = share_dir() / "config"
        available = sorted(p.relative_to(config_dir).as_posix() for p in config_dir.rglob("*.yaml"))
        raise ConfigError(f"no config file {name!r} in {path.parent}; available: {available}")
    return path
