"""Training: loop with EMA, validation, atomic per-epoch checkpoints and resume; loading models.

Modules: shared by every data kind, :mod:`.fit` (the training function), :mod:`.checkpoint` and
:mod:`.distributed`; per kind, :mod:`.showers` (with its data, :mod:`.showers_data`) and
:mod:`.jets`.

Public API:
    * :func:`train_model` - train a registered model on a shower file, resumable;
    * :func:`train_jets` / :func:`load_jet_model` - the same for jet set models;
    * :func:`load_model` - a :class:`Surrogate` (model + preprocessing + geometry) from a run
      directory or checkpoint, loaded with ``torch.load(weights_only=True)``;
    * :func:`read_checkpoint` - the raw checkpoint dict (JSON fields parsed).
"""

from __future__ import annotations

from showerforge.training.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    CheckpointError,
    Surrogate,
    checkpoint_path,
    file_sha256,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from showerforge.training.fit import TrainError, TrainResult, lr_at, resolve_device
from showerforge.training.jets import DEFAULT_JET_TRAIN, JetSurrogate, load_jet_model, train_jets
from showerforge.training.showers import DEFAULT_TRAIN, train_model
from showerforge.training.showers_data import TrainingData

__all__ = [
    "train_model",
    "train_jets",
    "load_jet_model",
    "JetSurrogate",
    "DEFAULT_JET_TRAIN",
    "TrainResult",
    "TrainError",
    "DEFAULT_TRAIN",
    "lr_at",
    "resolve_device",
    "TrainingData",
    "load_model",
    "Surrogate",
    "read_checkpoint",
    "save_checkpoint",
    "checkpoint_path",
    "file_sha256",
    "CheckpointError",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
]
