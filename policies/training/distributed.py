"""Data-parallel training under torchrun: DistributedDataParallel learner, one rollout worker set per rank.

``torchrun --nproc_per_node=N -m policies.training --config ...`` sets RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT; without them the same command runs single-process. Backend: nccl when the
learner is on CUDA, else gloo (TCP on the MASTER_ADDR the launcher gives, 127.0.0.1 for local runs).
Each rank steps its own environments (distinct episode seeds), computes its own advantages, and DDP
averages the gradients, so every rank applies the same update; episode statistics (and so the multiplier
updates) are summed over ranks, so the multipliers are identical everywhere. Rank 0 alone logs and writes
checkpoints; ``assert_in_sync`` compares parameter digests of all ranks at every checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from safevla_node.errors import TrainingError

__all__ = ["DistContext", "assert_in_sync", "init_distributed", "parameters_digest", "shutdown", "wrap_model"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that logs and checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one rank takes part."""
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of ``tensor`` over ranks (the tensor itself when single-process)."""
        if self.distributed:
            tensor = tensor.to(self.device)
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (picklable objects)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def _resolve_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(device)


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the process group torchrun describes in the environment, or run single-process.

    Raises:
        TrainingError: WORLD_SIZE > 1 without the rest of the torchrun variables.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = _resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(device=resolved)
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise TrainingError(f"WORLD_SIZE={world} but {missing} are not set: launch with torchrun")
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, resolved)


def wrap_model(model: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """DDP around ``model`` when distributed (it broadcasts rank 0's parameters), else ``model``.

    ``find_unused_parameters`` for models with parameters the loss does not reach (the SafeVLA actor
    branch's value head). Inputs are not moved by DDP (``device_ids=None``): the model places its own tensors.
    """
    if not ctx.distributed:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=None, find_unused_parameters=find_unused_parameters)


def parameters_digest(model: nn.Module) -> str:
    """sha256 over every parameter and buffer (name, dtype, bytes), to compare ranks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def assert_in_sync(model: nn.Module, ctx: DistContext) -> list[str]:
    """Digests of every rank; raises if they differ.

    Raises:
        TrainingError: some rank's parameters differ from rank 0's.
    """
    digests = ctx.gather(parameters_digest(model))
    if len(set(digests)) > 1:
        bad = [r for r, d in enumerate(digests) if d != digests[0]]
        raise TrainingError(f"ranks {bad} hold parameters that differ from rank 0: the data-parallel update "
                            "diverged (non-deterministic kernels or a rank-local update)")
    return digests


def shutdown(ctx: DistContext) -> None:
    """Leave the process group together: without the barrier a rank can tear gloo down while its peer
    still talks to it, and the peer aborts (SIGABRT, "terminate called without an active exception").
    If a rank failed, torchrun stops the others, so the barrier cannot hang a run."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
