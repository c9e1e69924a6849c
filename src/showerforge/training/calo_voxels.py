"""Training on CaloChallenge-format shower files: :func:`train_model`.

:func:`train_model` is the shower counterpart of :func:`showerforge.training.jet_set.train_jets`: it
reads the file into a :class:`~showerforge.training.calo_voxels_data.TrainingData` (split,
preprocessing fit, batches) and hands it to the training function shared by every data kind,
:func:`showerforge.training.fit.fit`. The checkpoint holds ``data_kind = "calo-voxels"``, the
:class:`~showerforge.data.preprocess.ShowerPreprocessor` state and the geometry (layout in
:mod:`showerforge.runs.checkpoint`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from showerforge.data.preprocess import preprocessor_from_state
from showerforge.models.registry import get_spec
from showerforge.runs.checkpoint import file_sha256
from showerforge.training.calo_voxels_data import TrainingData
from showerforge.training.fit import PreparedData, TrainConfig, TrainOptions, TrainResult, fit, split_train_options

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DATA_KIND", "DEFAULT_TRAIN", "train_model"]

DATA_KIND = "calo-voxels"
"""``data_kind`` of the checkpoints this module writes (:class:`showerforge.kinds.calo_voxels.CaloVoxels`)."""

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
            "data_kind": DATA_KIND,
            "preprocessing": self.data.preprocessing.state_dict(),
            "geometry": self.data.geometry.to_dict(),
        }

    def config_entries(self) -> dict[str, Any]:
        return {
            "data_kind": DATA_KIND,
            "preprocessing": self.data.preprocessing.state_dict(),
            "geometry": self.data.geometry.to_dict(),
            "in_memory": self.data.in_memory,
        }


def train_model(
    data_path: str | Path,
    model_name: str = "cfm-voxel",
    out_dir: str | Path = "runs/cfm-voxel",
    *,
    max_memory_gb: float = 2.0,
    **options: Unpack[TrainOptions],
) -> TrainResult:
    """Train a registered model on a CaloChallenge-format shower file.

    Writes ``<out_dir>/config.json`` (resolved configuration), ``<out_dir>/checkpoint.pt`` after
    every epoch (atomically; layout in :mod:`showerforge.runs.checkpoint`) and
    ``<out_dir>/history.json``. Re-running with the same arguments continues from the last
    complete epoch (bit-identical to an uninterrupted run on the same device); a larger
    ``epochs`` extends a finished run.

    Args:
        data_path: training file (``incident_energies`` (N, 1) MeV, ``showers`` (N, voxels) MeV).
        model_name: key of :data:`showerforge.models.MODELS`.
        out_dir: run directory.
        options: training settings and how to run, see :class:`~showerforge.training.fit.TrainOptions`
            (defaults: :data:`DEFAULT_TRAIN`; ``batch_size`` counts showers).
        max_memory_gb: hold preprocessed training rows in memory up to this size, else stream.

    Returns:
        A :class:`TrainResult`.
    """
    cfg, run_options = split_train_options(TrainConfig(), options, caller="train_model")
    spec = get_spec(model_name)
    chosen = {**spec.defaults, **(run_options.get("config_overrides") or {})}
    preprocessing_options = {k: chosen[k] for k in spec.preprocessing_keys}

    def prepare(ckpt: dict[str, Any] | None, dev: torch.device) -> PreparedData:
        pre = None if ckpt is None else preprocessor_from_state(ckpt["preprocessing"])
        return _ShowerData(
            TrainingData(
                data_path,
                **cfg.split_keywords(dev),
                preprocessing=pre,
                max_memory_gb=max_memory_gb,
                preprocessing_options=preprocessing_options,
            )
        )

    return fit(
        prepare,
        model_name,
        out_dir,
        cfg,
        data_kind=DATA_KIND,
        data_name=str(data_path),
        **run_options,
    )
