"""Training: one loop with EMA, validation, atomic per-epoch checkpoints and resume, for every kind.

Modules: shared by every kind of data, :mod:`.fit` (the training function) and
:mod:`.distributed`; per kind, :mod:`.calo_voxels` (with its data, :mod:`.calo_voxels_data`)
and :mod:`.jet_set`. Checkpoints are written in the format of :mod:`showerforge.runs`; loading a
trained model for sampling is :mod:`showerforge.generate`'s.

Public API:
    * :func:`train_model` - train a registered model on a shower file, resumable;
    * :func:`train_jets` - the same for jet set models;
    * :func:`fit` - the training function a new kind of data calls with its prepared rows.
"""

from __future__ import annotations

from showerforge.training.calo_voxels import DEFAULT_TRAIN, train_model
from showerforge.training.calo_voxels_data import TrainingData
from showerforge.training.fit import TrainConfig, TrainError, TrainResult, fit, lr_at
from showerforge.training.jet_set import DEFAULT_JET_TRAIN, train_jets

__all__ = [
    "train_model",
    "train_jets",
    "fit",
    "DEFAULT_JET_TRAIN",
    "TrainConfig",
    "TrainResult",
    "TrainError",
    "DEFAULT_TRAIN",
    "lr_at",
    "TrainingData",
]
