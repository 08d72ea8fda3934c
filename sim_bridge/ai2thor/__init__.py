"""AI2-THOR (Stretch mode) behind ``SimBackend``: metadata conversion, SafeVLA's action calls, the backend.

ai2thor itself is optional (``pip install safevla_node[ai2thor]``) and imported only when a controller starts.
"""

from sim_bridge.ai2thor.backend import Ai2ThorBackend, ai2thor_controller
from sim_bridge.ai2thor.config import Ai2ThorConfig
from sim_bridge.ai2thor.errors import Ai2ThorError, Ai2ThorUnavailableError
from sim_bridge.ai2thor.tasks import EpisodeSpec, load_val_tasks

__all__ = [
    "Ai2ThorBackend",
    "Ai2ThorConfig",
    "Ai2ThorError",
    "Ai2ThorUnavailableError",
    "EpisodeSpec",
    "ai2thor_controller",
    "load_val_tasks",
]
