"""ros2 launch safevla_node sim.launch.py: the 'sim' profile of config/stack.yaml (same graph as `safevla up sim`)."""

from safevla_node.launch_description import launch_description


def generate_launch_description():  # noqa: D103 (ros2 launch entry point)
    return launch_description("sim")
