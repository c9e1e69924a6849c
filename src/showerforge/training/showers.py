"""Training on CaloChallenge-format shower files: :func:`train_model`.

:func:`train_model` is the shower counterpart of :func:`showerforge.training.jets.train_jets`: it
reads the file into a :class:`~showerforge.training.showers_data.TrainingData` (split,
preprocessing fit, batches) and hands it to the training function shared by every data kind,
:func:`showerforge.training.fit.fit`. The checkpoint holds ``data_kind = "calo-voxel"``, the
:class:`~showerforge.data.preprocess.ShowerPreprocessor` state and the geometry (layout in
:mod:`showerforge.training.checkpoint`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from showerforge.data.preprocess import preprocessor_from_state
from showerforge.models.registry import get_spec
from showerforge.training.checkpoint import file_sha256
from showerforge.training.fit import PreparedData, TrainConfig, TrainResult, fit
from showerforge.training.showers_data import TrainingData

__all__ = ["DEFAULT_TRAIN", "train_model"]

DEFAULT_TRAIN: dict[str, Any] = asdict(TrainConfig())
"""Training hyperparameters of showers and their defaults (recorded in ``config.json``)."""


def _provenance(data: TrainingData) -> dict[str, Any]:
    attrs = {k: v for k, v in data.attrs.items() if isinstance(v, (str, int, float, bool)) and k != "geometry"}
    return {
        "path": str(data.path.resolve()),
        "sha256": file_sha256(data.path),
        "size_bytes": data.path.stat().st_size,
        "n_showers": data.n_rows,
        "n_train": data.n_train,
        "n_val": data.n_val,
        "geometry": data.geometry.name,
        "incident_mev_range": list(data.incident_range_mev),
        "file_attrs": json.loads(json.dumps(attrs, default=str)),
    }


class _ShowerData:
    """:class:`~showerforge.training.fit.PreparedData` of a CaloChallenge-format shower file."""

    rate_key = "showers_per_s"

    def __init__(self, data: TrainingData) -> None:
        self.data = data
        self.provenance = _provenance(data)

    def model_data_keys(self) -> dict[str, Any]:
        pre = self.data.preprocessing
        return {"token_sizes": pre.token_sizes, "n_cond": pre.n_cond, "energy_decode": pre.energy_decode()}

    def batches_per_epoch(self, batch_size: int) -> int:
        return self.data.batches_per_epoch(batch_size)

    def batches(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        return ((x, c, None) for x, c in self.data.epoch(epoch, batch_size))

    def validation(self) -> tuple[Tensor, Tensor, Tensor | None] | None:
        return None if self.data.val is None else (*self.data.val, None)

    def restore(self, ckpt: dict[str, Any]) -> None:
        pass

    def checkpoint_entries(self) -> dict[str, Any]:
        return {
            "data_kind": "calo-voxel",
            "preprocessing": self.data.preprocessing.state_dict(),
            "geometry": self.data.geometry.to_dict(),
        }

    def config_entries(self) -> dict[str, Any]:
        return {
            "data_kind": "calo-voxel",
            "preprocessing": self.data.preprocessing.state_dict(),
            "geometry": self.data.geometry.to_dict(),
            "in_memory": self.data.in_memory,
        }


def train_model(
    data_path: str | Path,
    model_name: str = "cfm-voxel",
    out_dir: str | Path = "runs/cfm-voxel",
    *,
    epochs: int = DEFAULT_TRAIN["epochs"],
    batch_size: int = DEFAULT_TRAIN["batch_size"],
    lr: float = DEFAULT_TRAIN["lr"],
    val_fraction: float = DEFAULT_TRAIN["val_fraction"],
    seed: int = DEFAULT_TRAIN["seed"],
    device: str | torch.device = "auto",
    resume: bool = True,
    progress: bool = True,
    max_minutes: float | None = None,
    config_overrides: dict[str, Any] | None = None,
    weight_decay: float = DEFAULT_TRAIN["weight_decay"],
    schedule: str = DEFAULT_TRAIN["schedule"],
    warmup_steps: int = DEFAULT_TRAIN["warmup_steps"],
    grad_clip: float = DEFAULT_TRAIN["grad_clip"],
    ema_decay: float = DEFAULT_TRAIN["ema_decay"],
    num_threads: int | None = None,
    max_memory_gb: float = 2.0,
) -> TrainResult:
    """Train a registered model on a CaloChallenge-format shower file.

    Writes ``<out_dir>/config.json`` (resolved configuration), ``<out_dir>/checkpoint.pt`` after
    every epoch (atomically; layout in :mod:`showerforge.training.checkpoint`) and
    ``<out_dir>/history.json``. Re-running with the same arguments continues from the last
    complete epoch (bit-identical to an uninterrupted run on the same device); a larger
    ``epochs`` extends a finished run.

    Args:
        data_path: training file (``incident_energies`` (N, 1) MeV, ``showers`` (N, voxels) MeV).
        model_name: key of :data:`showerforge.models.MODELS`.
        out_dir: run directory.
        epochs: total epochs (including resumed ones).
        batch_size: showers per optimizer step.
        lr: peak learning rate of AdamW.
        val_fraction: held-out fraction for the validation loss (at most 10,000 rows).
        seed: seed of weights, split, batch order and flow-matching noise.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        resume: continue an existing run in ``out_dir``; ``False`` refuses to touch one.
        progress: show a rich progress bar (loss, val loss, showers/s).
        max_minutes: stop after the last epoch expected to end within this wall time.
        config_overrides: model hyperparameters (see ``MODELS[model_name].defaults``).
        weight_decay: AdamW weight decay.
        schedule: ``"cosine"`` (to 0 at the last epoch) or ``"constant"``, after linear warmup.
        warmup_steps: optimizer steps of linear warmup.
        grad_clip: max gradient norm (0 disables clipping).
        ema_decay: EMA decay of the sampling weights (with warmup, see :func:`~showerforge.training.fit.ema_model`).
        num_threads: CPU threads (default: all cores available to the process).
        max_memory_gb: hold preprocessed training rows in memory up to this size, else stream.

    Returns:
        A :class:`TrainResult`.
    """
    cfg = TrainConfig(
        epochs, batch_size, lr, val_fraction, seed, weight_decay, schedule, warmup_steps, grad_clip, ema_decay
    )

    spec = get_spec(model_name)
    chosen = {**spec.defaults, **(config_overrides or {})}
    options = {k: chosen[k] for k in spec.preprocessing_keys}

    def prepare(ckpt: dict[str, Any] | None, dev: torch.device) -> PreparedData:
        pre = None if ckpt is None else preprocessor_from_state(ckpt["preprocessing"])
        return _ShowerData(
            TrainingData(
                data_path,
                val_fraction=val_fraction,
                seed=seed,
                device=dev,
                preprocessing=pre,
                max_memory_gb=max_memory_gb,
                preprocessing_options=options,
            )
        )

    return fit(
        prepare,
        model_name,
        out_dir,
        cfg,
        data_kind="calo-voxel",
        data_name=str(data_path),
        device=device,
        resume=resume,
        progress=progress,
        max_minutes=max_minutes,
        config_overrides=config_overrides,
        num_threads=num_threads,
    )
