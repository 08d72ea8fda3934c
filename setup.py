"""ament_python package that also installs with plain pip (no ROS install needed for the cores)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "safevla_node"

# Console scripts double as `ros2 run safevla_node <name>` executables (setup.cfg puts them in lib/<pkg>).
NODES = {
    "safety_monitor": "safevla_node.nodes.safety_monitor:main",
    "sim_bridge": "safevla_node.nodes.sim_bridge:main",
    "recorder": "safevla_node.nodes.recorder:main",
    "policy_node": "safevla_node.nodes.policy_node:main",
    "arm_action_relay": "safevla_node.nodes.arm_action_relay:main",
}
# Command-line tools (not nodes): `safevla demo|up|record|replay|audit|eval|train`.
TOOLS = {
    "safevla": "safevla_node.cli:main",
}

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    packages=find_packages(include=["safevla_node*", "sim_bridge*", "policies*"]),
    package_data={"": ["py.typed"], "policies": ["checkpoints/bc_tiny/*"]},  # the shipped BC policy
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE_NAME}/config/robots", glob("config/robots/*.yaml")),
        (f"share/{PACKAGE_NAME}/launch", glob("launch/*.py")),
    ],
    install_requires=["numpy", "PyYAML"],
    # AI2-THOR backend (sim_bridge.ai2thor); SafeVLA itself pins a Stretch build commit (see its README).
    extras_require={"ai2thor": ["ai2thor==5.0.0"]},
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="SafeVLA ROS 2 maintainers",
    maintainer_email="maintainers@safevla-ros.dev",
    description="Safety-aligned VLA deployment stack for Stretch-class robots on ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in {**NODES, **TOOLS}.items()],
    },
)
