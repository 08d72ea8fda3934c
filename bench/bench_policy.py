"""Policy step latency on CPU: KV-cached stepping vs recomputing the history, and achieved FLOP/s.

Prints, for the tiny and the full SafeVLA network (random weights; speed does not depend on their values):
- batch-1 step latency and throughput with precomputed DINOv2 features (the decoder uses the KV cache),
- the full network once more including the DINOv2 forward of both cameras (fp32 and bf16 autocast),
- per-step cost at history length 50 and 200 with the KV cache vs recomputing the decoder over the whole
  history without a cache (same run, same weights; the ratio is the cache's gain),
- FLOPs per step (torch.utils.flop_counter) and achieved GFLOP/s against the practical peak, measured here
  as a large fp32 / bf16 matmul.

Run: ``python bench/bench_policy.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.configuration_safevla import SafeVLAConfig, load_policy_config  # noqa: E402
from policies.encoders.dinov2 import PooledDinoFeatures  # noqa: E402
from policies.modeling_safevla import SafeVLAModel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object], reps: int, warmup: int = 2) -> float:
    """Best wall time of ``fn`` in seconds (the minimum is the least disturbed by other load on the machine)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples)


def flops_of(fn: Callable[[], object]) -> int:
    """FLOPs counted by torch's flop counter (matmuls/convs/attention; 2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, reps: int) -> float:
    """Practical peak GFLOP/s: a 2048^3 matmul."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, reps) / 1e9


class StepBench:
    """One network with an episode in progress and inputs for one step."""

    def __init__(self, cfg: SafeVLAConfig) -> None:
        torch.manual_seed(0)
        self.cfg = cfg
        self.model = SafeVLAModel(cfg).eval()
        rows, cols = cfg.pooled_grid
        self.pooled = {n: torch.randn(1, cfg.image_encoder.embed_dim, rows, cols) for n in cfg.camera_names}
        self.ids = torch.randint(3, cfg.text_encoder.vocab_size, (1, 15))
        self.one = torch.ones(1, dtype=torch.long)

    def episode_at(self, history: int):
        """An episode whose caches already hold ``history`` steps (prefilled in one decoder pass)."""
        state = self.model.start_episode(self.ids, torch.ones_like(self.ids))
        d = self.cfg.d_model
        for prefix in self.cfg.branch_names:
            cache = state.branches[prefix].cache
            self.model.branch(prefix).decoder(torch.randn(1, history, d), cache)
        return state

    def cached_step(self, state, history: int) -> None:
        """One policy step with the KV cache, leaving the cache at ``history`` entries."""
        self.model.step(state, self.pooled, self.one, self.one * 0, self.one * history)
        for episode in state.branches.values():
            episode.cache.length = history

    def recompute_step(self, state, history_embeddings: torch.Tensor) -> None:
        """The no-cache baseline: fuse this step, then run every decoder over the whole history again."""
        for prefix in self.cfg.branch_names:
            branch = self.model.branch(prefix)
            obs = branch.visual_encoder(self.pooled, state.branches[prefix].text_tokens)
            x = branch.step_embedding(obs, self.one, self.one * 0, self.one)
            beliefs = branch.decoder(torch.cat([history_embeddings, x[:, None]], dim=1))[:, -1]
            branch.actor(beliefs), branch.critic(beliefs)


def bench_network(name: str, cfg: SafeVLAConfig, reps: int, histories: tuple[int, ...], peak: float) -> None:
    bench = StepBench(cfg)
    params = sum(p.numel() for p in bench.model.parameters()) / 1e6
    print(f"\n== {name}: {params:.1f} M parameters, precomputed DINOv2 features, batch 1, fp32")
    print(f"{'history':>8} {'KV cache ms':>12} {'recompute ms':>13} {'ratio':>7} {'steps/s':>8} "
          f"{'GFLOP/step':>11} {'GFLOP/s':>8} {'% peak':>7}")
    with torch.inference_mode():
        for history in histories:
            state = bench.episode_at(history)
            embeddings = torch.randn(1, history, cfg.d_model)
            cached = timed(lambda: bench.cached_step(state, history), reps)
            recompute = timed(lambda: bench.recompute_step(state, embeddings), reps)
            flops = flops_of(lambda: bench.cached_step(state, history))
            rate = flops / cached / 1e9
            print(f"{history:>8} {cached * 1e3:>12.2f} {recompute * 1e3:>13.2f} {recompute / cached:>6.2f}x "
                  f"{1 / cached:>8.1f} {flops / 1e9:>11.3f} {rate:>8.1f} {100 * rate / peak:>6.1f}%")


def bench_with_vision(cfg: SafeVLAConfig, reps: int, peaks: dict[torch.dtype, float]) -> None:
    bench = StepBench(cfg)
    encoder = PooledDinoFeatures(cfg.image_encoder, cfg.pooled_grid).eval()
    images = torch.randn(2, 3, cfg.image_encoder.image_height, cfg.image_encoder.image_width)
    print("\n== full network including the DINOv2 ViT-S/14 forward of both cameras (224x378 each), batch 1 step")
    print(f"{'precision':>9} {'DINOv2 ms':>10} {'policy ms':>10} {'total ms':>9} {'steps/s':>8} {'GFLOP':>7} "
          f"{'GFLOP/s':>8} {'% peak':>7}")
    with torch.inference_mode():
        state = bench.episode_at(50)
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            ctx = (lambda: torch.autocast("cpu", dtype=dtype)) if dtype else None

            def vision(ctx=ctx) -> torch.Tensor:
                if ctx is None:
                    return encoder(images)
                with ctx():
                    return encoder(images)

            def policy(ctx=ctx) -> None:
                if ctx is None:
                    bench.cached_step(state, 50)
                    return
                with ctx():
                    bench.cached_step(state, 50)

            t_vision, t_policy = timed(vision, reps), timed(policy, reps)
            flops = flops_of(vision) + flops_of(policy)
            total = t_vision + t_policy
            rate = flops / total / 1e9
            peak = peaks[dtype or torch.float32]
            print(f"{label:>9} {t_vision * 1e3:>10.1f} {t_policy * 1e3:>10.1f} {total * 1e3:>9.1f} {1 / total:>8.1f} "
                  f"{flops / 1e9:>7.2f} {rate:>8.1f} {100 * rate / peak:>6.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and history lengths")
    args = parser.parse_args()
    reps = 3 if args.quick else 10
    torch.manual_seed(0)
    peaks = {torch.float32: matmul_peak(torch.float32, reps), torch.bfloat16: matmul_peak(torch.bfloat16, reps)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print(f"practical peak (2048^3 matmul, this run): fp32 {peaks[torch.float32]:.0f} GFLOP/s, "
          f"bf16 {peaks[torch.bfloat16]:.0f} GFLOP/s (REFERENCE saw ~520 GFLOP/s bf16 with AMX)")
    histories = (50,) if args.quick else (1, 50, 200, 499)
    bench_network("tiny", load_policy_config(REPO / "config" / "policy_tiny.yaml"), reps, histories,
                  peaks[torch.float32])
    full = load_policy_config(REPO / "config" / "policy_safevla_full.yaml")
    bench_network("full SafeVLA", full, reps, (50, 200) if args.quick else histories, peaks[torch.float32])
    bench_with_vision(full, reps, peaks)


if __name__ == "__main__":
    main()
