"""Where a run computes: the torch device and the CPU threads it may use."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from showerforge.errors import UserError

__all__ = ["DeviceError", "resolve_device", "torch_threads"]


class DeviceError(UserError):
    """An unknown device, or one this machine does not have."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other values as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:1, ...") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} requested but CUDA is not available on this machine; use --device cpu")
    return dev


def _available_cores() -> int:
    """Cores this process may run on (affinity-aware on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(device: torch.device, num_threads: int | None) -> Iterator[None]:
    """On CPU use every core this process may run on (or ``num_threads``); restore afterwards."""
    before = torch.get_num_threads()
    if device.type == "cpu":  # torchrun: the cores are shared by the local processes
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        torch.set_num_threads(num_threads or max(1, _available_cores() // local))
    try:
        yield
    finally:
        torch.set_num_threads(before)
