"""Training beyond one process: ``torchrun`` + :class:`~torch.nn.parallel.DistributedDataParallel`.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``), the training functions join the process group (``gloo`` on CPU, ``nccl`` on
CUDA). Every rank iterates over the same global batches (same seed, same order) and trains on
its share of each (rows ``rank::world_size``); DDP averages the gradients, so one optimizer step
uses the whole global batch, as a single process would. Ranks draw different flow-matching noise.
Only rank 0 writes checkpoints, ``config.json`` and ``history.json`` and shows progress; every rank
reads the checkpoint when resuming.

Example (2 CPU processes on one machine)::

    torchrun --standalone --nproc-per-node 2 -m showerforge.cli train --data train.h5 -o runs/ddp/
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["DistContext", "init_distributed", "LossModule"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (1: not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    def share(self, *tensors: Tensor | None) -> tuple[Tensor | None, ...]:
        """This rank's rows (``rank::world_size``) of each tensor of a global batch."""
        if not self.active:
            return tensors
        return tuple(None if t is None else t[self.rank :: self.world_size] for t in tensors)

    def mean(self, value: float) -> float:
        """Average of a number over the ranks."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world_size

    def barrier(self) -> None:
        """Wait for every rank (no-op when not distributed)."""
        if self.active:
            dist.barrier()


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; returns the context and the device.

    On CUDA each rank takes ``cuda:LOCAL_RANK``; on CPU the backend is ``gloo``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size()), device


class LossModule(nn.Module):
    """Wraps a generative model so that DDP's ``forward`` is its training loss."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, cond: Tensor, mask: Tensor | None, generator: Any) -> Tensor:
        return self.model.loss(x, cond, mask, generator=generator)  # type: ignore[operator]
