"""ros2 launch safevla_node robot.launch.py: the 'robot' profile of config/stack.yaml.

The same graph as `safevla up robot`.
"""

from safevla_node.launch_description import launch_description


def generate_launch_description():  # noqa: D103 (ros2 launch entry point)
    return launch_description("robot")
