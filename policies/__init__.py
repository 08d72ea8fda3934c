"""The SafeVLA policy: model, checkpoints and runtime (torch lives here and nowhere in the safety core)."""

__all__: list[str] = []
