"""Runs: the checkpoint format, the shipped models and the device a run computes on.

Below ``training`` and ``generate``: training writes runs, generation and the kinds read them.

* :mod:`.checkpoint`: ``checkpoint.pt`` (a ``state_dict`` plus JSON text, written atomically,
  read with ``torch.load(weights_only=True)``) and :class:`LoadedRun`, the fields every loaded
  model has;
* :mod:`.shipped`: the pretrained models shipped in the package and :func:`resolve_model`
  (a shipped name, a run folder or a checkpoint file -> the checkpoint's path);
* :mod:`.device`: :func:`resolve_device` and the CPU threads of a run.
"""

from __future__ import annotations

from showerforge.runs.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    CheckpointError,
    LoadedRun,
    build_weights,
    checkpoint_path,
    file_sha256,
    read_checkpoint,
    run_fields,
    save_checkpoint,
    write_json_atomic,
)
from showerforge.runs.device import DeviceError, resolve_device, torch_threads
from showerforge.runs.shipped import (
    PRETRAINED_DIR,
    export_pretrained,
    pretrained_checkpoint,
    resolve_model,
    shipped_models,
)

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "CheckpointError",
    "LoadedRun",
    "build_weights",
    "checkpoint_path",
    "file_sha256",
    "read_checkpoint",
    "run_fields",
    "save_checkpoint",
    "write_json_atomic",
    "DeviceError",
    "resolve_device",
    "torch_threads",
    "PRETRAINED_DIR",
    "export_pretrained",
    "pretrained_checkpoint",
    "resolve_model",
    "shipped_models",
]
