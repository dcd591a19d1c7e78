"""Process groups for ``torchrun``: who we are, how to agree, and who writes files.

A run started by ``torchrun`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` in the environment)
joins the default process group: NCCL on CUDA, gloo on the CPU. A plain ``python`` run is
a world of one and every collective here is a no-op.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from graphssl.core.errors import ConfigError


@dataclass
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one (e.g. a SIGTERM)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def any_of(self, flags: list[bool]) -> list[bool]:
        """:meth:`any` of each flag, in one collective: every rank gets the same answers, so all
        of them skip, stop or go on together."""
        if not self.distributed:
            return [bool(f) for f in flags]
        value = torch.tensor([1.0 if f else 0.0 for f in flags])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return [bool(v) for v in value.tolist()]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm statistics, which each rank updates from
        its own micro-batches), so the replicas are identical, not only their parameters."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer.data, src=0)

    def close(self) -> None:
        """Destroy the process group this process created; only once every rank is done with it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def join_world(device_name: str = "auto") -> World:
    """Join the process group described by torchrun's environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return World(rank, world_size, local_rank)
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    try:
        # the agreement collectives (any, sum, gather) run on CPU tensors: gloo carries them next to NCCL
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if use_cuda else "gloo")
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the process group of rank {rank}/{world_size}: {exc}") from None
    return World(rank, world_size, local_rank, owns_group=True)


def rank_device(world: World, device: torch.device) -> torch.device:
    """One GPU per local rank when running on CUDA."""
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


@contextmanager
def main_first(world: World) -> Iterator[None]:
    """Let rank 0 do something first (build a data cache), then the others (read it)."""
    if not world.is_main:
        world.barrier()
    yield
    if world.is_main:
        world.barrier()
