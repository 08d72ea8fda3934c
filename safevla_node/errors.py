"""Project exceptions: each names what was wrong and what to do about it."""


class SafeVLAError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(SafeVLAError, ValueError):
    """A configuration file or parameter is missing, malformed or out of range."""


class ShieldError(SafeVLAError):
    """The safety shield was asked something it cannot judge (e.g. an unknown command type)."""


class MessageError(SafeVLAError, ValueError):
    """A ROS message is malformed (NaN, wrong sizes, unknown encoding) and must be dropped."""


class PolicyLoadError(SafeVLAError):
    """A policy checkpoint, config or tokenizer is missing, of the wrong format or does not fit the model."""
