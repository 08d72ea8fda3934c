"""The ros2_ws/ colcon workspace builds this package with the install layout `ros2 run`/`ros2 launch` expect."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PKG = "safevla_node"


@pytest.fixture(scope="module")
def install_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    colcon = shutil.which("colcon") or str(Path(sys.executable).with_name("colcon"))
    if not Path(colcon).exists():
        pytest.fail("colcon is not installed: run `make setup` (colcon-common-extensions is in requirements/dev.txt)")
    out = tmp_path_factory.mktemp("colcon")
    result = subprocess.run(
        [colcon, "--log-base", str(out / "log"), "build", "--build-base", str(out / "build"),
         "--install-base", str(out / "install")],
        cwd=REPO_ROOT / "ros2_ws", capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout}\n{result.stderr}"
    return out / "install" / PKG


def _site_packages(install_base: Path) -> Path:
    return next((install_base / "lib").glob("python3*/site-packages"))


def test_colcon_installs_package_marker_manifest_configs_and_launch_files(install_base: Path):
    share = install_base / "share" / PKG
    assert (install_base / "share/ament_index/resource_index/packages" / PKG).is_file()
    assert (share / "package.xml").read_text() == (REPO_ROOT / "package.xml").read_text()
    for pattern, folder in (("config/*.yaml", "config"), ("config/robots/*.yaml", "config/robots"),
                            ("launch/*.py", "launch")):
        for source in REPO_ROOT.glob(pattern):
            assert (share / folder / source.name).is_file(), f"{source.name} not installed in share/{PKG}/{folder}"


def test_every_console_script_is_a_ros2_run_executable(install_base: Path):
    entry_points = configparser.ConfigParser()
    egg_info = next(_site_packages(install_base).glob(f"{PKG}-*.egg-info"))
    entry_points.read(egg_info / "entry_points.txt")
    scripts = entry_points["console_scripts"]
    assert scripts, "no console scripts declared"
    for name in scripts:
        exe = install_base / "lib" / PKG / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{name} is not in lib/{PKG} (setup.cfg install_scripts)"


def test_installed_packages_import_without_the_source_tree(install_base: Path, tmp_path: Path):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(_site_packages(install_base)), "PYTHONNOUSERSITE": "1"}
    code = "import safevla_node.actions, sim_bridge, policies; print(safevla_node.actions.__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert str(install_base) in result.stdout
