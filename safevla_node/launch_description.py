"""ros2 launch support: turn the stack description into launch_ros actions.

Imported only by ``launch/*.launch.py`` (launch and launch_ros come with a system ROS 2 install); the
graph itself comes from ``safevla_node.stack`` so ``safevla up`` starts exactly the same nodes.
"""

from __future__ import annotations

from typing import Any

from safevla_node.paths import PACKAGE_NAME
from safevla_node.stack import LAUNCH_ARGUMENTS, load_stack

__all__ = ["launch_description"]


def launch_description(profile: str) -> Any:
    """A LaunchDescription that declares the stack's launch arguments and starts ``profile``'s nodes."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def nodes(context: Any) -> list[Any]:
        arguments = {a.name: LaunchConfiguration(a.name).perform(context) for a in LAUNCH_ARGUMENTS}
        return [
            Node(
                package=PACKAGE_NAME,
                executable=n.executable,
                name=n.name,
                output="screen",
                parameters=[*(str(p) for p in n.params_files), dict(n.parameters)],
                remappings=list(n.remappings.items()),
            )
            for n in load_stack().resolve(profile, arguments)
        ]

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
                for a in LAUNCH_ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
