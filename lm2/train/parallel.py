"""Data parallelism applied from outside an unchanged model: process-group setup, DDP, FSDP2 (``fully_shard``).

Under ``torchrun`` the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...) is set and
``init_distributed`` joins the group: gloo on CPU, NCCL on GPUs, nothing else changes. Gradients are averaged
over processes (DDP all-reduce, FSDP reduce-scatter), and the loop scales each process's loss accordingly, so
N processes with B/N sequences each compute exactly the gradient of one process with B.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", backend: str = "auto") -> Dist:
    """Join the process group if launched by torchrun (WORLD_SIZE set), and pick this process's device."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("config field train.device=cuda but no CUDA device is available")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if use_cuda else None)
    return Dist(rank, world_size, local_rank, dev)


def apply_parallelism(model: torch.nn.Module, runner: torch.nn.Module, strategy: str, ctx: Dist) -> torch.nn.Module:
    """Wrap for data parallelism and return what the loop calls (``runner`` runs ``model`` over segments).

    * ddp: ``DistributedDataParallel(runner)``: one forward (all segments of a micro-batch) and one backward,
      so DDP's hooks fire once per parameter even though the model is called once per segment.
    * fsdp: FSDP2 ``fully_shard`` on every decoder block, then on the whole model (embeddings, final norm and
      the tied head share the root group); the runner is left unwrapped.
    """
    if not ctx.enabled:
        return runner
    if strategy in ("ddp", "none"):
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return DistributedDataParallel(runner, device_ids=ids)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard  # optional: FSDP2's public API (newer torch), fsdp only

        # One FSDP unit per decoder block, then the root (embeddings, final norm and the tied head). FSDP2 rebuilds
        # a block's dataclass inputs to hook their tensors; the blocks return their new state and never change the
        # one they are given, so the copy is harmless. reshard_after_forward=False: a fresh memory state is a view
        # (expand) of the block's initial-memory parameter and outlives the forward; resharding would free the
        # storage under it. Parameters, gradients and optimizer state stay sharded at rest.
        # The state's tensors are views (window slices, the expanded initial memory) that nothing updates in place.
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
        for module in model.modules():
            if type(module).__name__ in (model._no_split_modules or ()):
                fully_shard(module, reshard_after_forward=False)
        fully_shard(model, reshard_after_forward=False)
        return runner
    raise ValueError(f"distributed.strategy={strategy!r} is invalid: choose none, ddp or fsdp")


def no_sync(module: torch.nn.Module, enabled: bool):
    """Skip the gradient all-reduce on accumulation micro-steps that are not the last (DDP only)."""
    if enabled and hasattr(module, "no_sync"):
        return module.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(value: float | int, ctx: Dist) -> float:
    if not ctx.enabled:
        return value
    t = torch.tensor(float(value), dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.item()


def barrier(ctx: Dist) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: Dist) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
