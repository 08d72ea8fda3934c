"""Behaviour cloning of the embedded simulator's privileged expert on the tiny SafeVLA.

``collect`` records the expert (with DAgger-style noise) into per-episode uint8 shards; ``train`` fits the
actor by teacher-forced cross-entropy over whole episodes and writes our checkpoint format. CLI:
``python -m policies.bc collect|train``.
"""

from policies.bc.collect import CollectSettings, EpisodeSummary, collect, episode_plan, record_episode
from policies.bc.dataset import Episode, episode_name, list_shards, read_episode, write_episode

__all__ = [
    "CollectSettings",
    "Episode",
    "EpisodeSummary",
    "collect",
    "episode_name",
    "episode_plan",
    "list_shards",
    "read_episode",
    "record_episode",
    "write_episode",
]
