"""ros2 launch safevla_node replay.launch.py: the 'replay' profile of config/stack.yaml.

The same graph as `safevla up replay`.
"""

from safevla_node.launch_description import launch_description


def generate_launch_description():  # noqa: D103 (ros2 launch entry point)
    return launch_description("replay")
