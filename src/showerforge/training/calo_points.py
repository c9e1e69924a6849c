"""Training point-cloud models (``cfm-points``) on showerforge point files.

The training file is read with :func:`showerforge.data.points.read_points` and held in memory as
flat preprocessed points (4 float32 per point: 50k ILD photons of 10-90 GeV are ~1e8 points,
1.6 GB). A :class:`~showerforge.data.points_preprocess.PointsPreprocessor` is fitted on the
training split and saved in the checkpoint. Batches group showers of similar size (showers are
sorted by their number of points, cut into batches, and the batches shuffled), so a batch is
padded only to its own largest shower. The condition of a shower is its energy feature followed
by its summaries (points and energy per layer, centre of gravity), which the model's shower flow
learns and its point flow is conditioned on.

Checkpoint layout: as in :mod:`showerforge.runs.checkpoint`, plus ``data_kind = "calo-points"``,
``preprocessing`` (the preprocessor's state) and ``geometry`` (JSON of the file's geometry).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from showerforge.data.points import PointClouds, read_points
from showerforge.data.points_preprocess import PointsPreprocessor
from showerforge.errors import UserError
from showerforge.models import get_spec
from showerforge.runs.checkpoint import file_sha256
from showerforge.training.fit import (
    PreparedData,
    TrainConfig,
    TrainError,
    TrainOptions,
    TrainResult,
    fit,
    split_train_options,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DATA_KIND", "DEFAULT_POINTS_TRAIN", "train_points", "PointTrainingData"]

DATA_KIND = "calo-points"
MAX_VAL_SHOWERS = 500
POINTS_TRAIN_CONFIG = TrainConfig(batch_size=64, lr=5e-4)
DEFAULT_POINTS_TRAIN: dict[str, Any] = asdict(POINTS_TRAIN_CONFIG)
"""Point-model training hyperparameters and their defaults (recorded in ``config.json``)."""


class PointTrainingData:
    """Preprocessed showers in memory: split, summaries, size-grouped seeded batches.

    Args:
        clouds: every shower of the training file (the split is drawn here).
        val_fraction: held-out fraction (at most 500 showers).
        seed: split, dequantisation and batch order.
        device: device of the batches.
        preprocessing: a fitted preprocessor (a resumed run), else fitted on the training split.
        core: fit the preprocessor with the core split (see :mod:`showerforge.data.points_preprocess`).
    """

    def __init__(
        self,
        clouds: PointClouds,
        *,
        val_fraction: float,
        seed: int,
        device: torch.device,
        preprocessing: PointsPreprocessor | None = None,
        core: bool = False,
    ) -> None:
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if clouds.geometry is None:
            raise UserError("the point file has no geometry attribute; cannot tell its layers")
        n = len(clouds)
        n_val = min(int(round(val_fraction * n)), MAX_VAL_SHOWERS)
        if n - n_val < 1:
            raise UserError(f"{n} showers leave no training showers after the validation split")
        if clouds.num_points.min() < 1:
            raise UserError(f"shower {int(np.argmin(clouds.num_points))} has no points; expected at least one")
        self.seed, self.device = int(seed), device
        self.n_layers = clouds.geometry.n_layers
        perm = np.random.default_rng(self.seed).permutation(n)
        tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        train = clouds.select(tr)
        try:
            self.preprocessing = preprocessing or PointsPreprocessor(self.n_layers, core=core).fit(
                train, seed=self.seed
            )
        except ValueError as err:
            raise UserError(str(err)) from None
        self.n_train, self.n_val = len(tr), n_val
        self.points, self.offsets, self.cond = self._encode(train)
        self.val = self._padded(*self._encode(clouds.select(va)), np.arange(n_val)) if n_val else None

    def _encode(self, clouds: PointClouds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pre = self.preprocessing
        cond = np.concatenate(
            [
                pre.condition(clouds.incident_mev),
                pre.encode_summaries(pre.summaries_of(clouds), clouds.incident_mev),
            ],
            axis=1,
        )
        flow = pre.flow_points(clouds)
        return pre.encode_points(flow.points, seed=self.seed + 1), flow.offsets.copy(), cond

    def _padded(
        self, points: np.ndarray, offsets: np.ndarray, cond: np.ndarray, idx: np.ndarray
    ) -> tuple[Tensor, Tensor, Tensor]:
        counts = offsets[idx + 1] - offsets[idx]
        width = int(counts.max())
        x = np.zeros((len(idx), width, 4), np.float32)
        mask = np.arange(width)[None, :] < counts[:, None]
        take = np.repeat(offsets[idx], counts) + (
            np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        )
        x[mask] = points[take]
        return (
            torch.from_numpy(x).to(self.device),
            torch.from_numpy(cond[idx]).to(self.device),
            torch.from_numpy(mask).to(self.device),
        )

    @property
    def n_summary(self) -> int:
        return self.preprocessing.n_summary

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.n_train // batch_size)

    def epoch(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """``(x (B, n, 4), cond (B, 1 + n_summary), mask (B, n))`` batches of showers of similar size."""
        rng = np.random.default_rng([self.seed, epoch])
        sizes = np.diff(self.offsets)
        # sort by size with random tie-breaking, cut into batches, shuffle the batches
        order = np.lexsort((rng.random(self.n_train), sizes))
        groups = [order[lo : lo + batch_size] for lo in range(0, self.n_train, batch_size)]
        for k in rng.permutation(len(groups)):
            yield self._padded(self.points, self.offsets, self.cond, groups[k])


class _PointData:
    """:class:`~showerforge.training.fit.PreparedData` of point-cloud showers.

    A model that draws its own number of points (``ModelSpec.own_length``, e.g. ``ar-tokens``) is
    conditioned on the energy feature alone (no summaries), its length cap is the training maximum
    and its points are ordered by energy (feature 3), descending.
    """

    rate_key = "showers_per_s"

    def __init__(
        self, data: PointTrainingData, provenance: dict[str, Any], geometry_json: str, own_length: bool = False
    ) -> None:
        self.data, self.provenance, self.geometry_json = data, provenance, geometry_json
        self.own_length = own_length

    def model_data_keys(self) -> dict[str, Any]:
        d = self.data
        if self.own_length:
            return {"n_particles": d.preprocessing.n_max, "n_features": 4, "n_cond": 1, "order_by": 3}
        n_max = int(np.ceil(d.preprocessing.n_max * 1.25))  # room for showers larger than the training maximum
        return {"n_particles": n_max, "n_features": 4, "n_summary": d.n_summary, "n_cond": 1 + d.n_summary}

    def batches_per_epoch(self, batch_size: int) -> int:
        return self.data.batches_per_epoch(batch_size)

    def _rows(self, rows: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
        x, cond, mask = rows
        return (x, cond[:, :1], mask) if self.own_length else (x, cond, mask)

    def batches(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        return (self._rows(b) for b in self.data.epoch(epoch, batch_size))

    def validation(self) -> tuple[Tensor, Tensor, Tensor | None] | None:
        return None if self.data.val is None else self._rows(self.data.val)

    def restore(self, ckpt: dict[str, Any]) -> None:
        return None

    def checkpoint_entries(self) -> dict[str, Any]:
        return {
            "data_kind": DATA_KIND,
            "preprocessing": self.data.preprocessing.state(),
            "geometry": self.geometry_json,
        }

    def config_entries(self) -> dict[str, Any]:
        return {"data_kind": DATA_KIND, "preprocessing": self.data.preprocessing.state()}


def train_points(
    data: str | Path, out_dir: str | Path, *, model: str = "cfm-points", **options: Unpack[TrainOptions]
) -> TrainResult:
    """Train a registered point-cloud model (``data_kind = "calo-points"``) on a point file.

    Writes ``<out_dir>/config.json``, ``checkpoint.pt`` after every epoch (atomically) and
    ``history.json``; re-running continues from the last complete epoch.

    Args:
        data: a showerforge point-cloud file (``simulate calo --points``).
        out_dir: run directory.
        model: key of :data:`showerforge.models.MODELS` with ``data_kind == "calo-points"``.
        options: see :class:`~showerforge.training.fit.TrainOptions` (defaults:
            :data:`DEFAULT_POINTS_TRAIN`; ``batch_size`` counts showers).
    """
    cfg, run_options = split_train_options(POINTS_TRAIN_CONFIG, options, caller="train_points")
    path = Path(data)
    spec = get_spec(model)
    core = bool({**spec.defaults, **(run_options.get("config_overrides") or {})}.get("core", False))

    def prepare(ckpt: dict[str, Any] | None, dev: torch.device) -> PreparedData:
        clouds = read_points(path)
        pre = None
        if ckpt is not None:
            pre = PointsPreprocessor(clouds.geometry.n_layers if clouds.geometry else 0, ckpt["preprocessing"])
        try:
            prepared = PointTrainingData(clouds, **cfg.split_keywords(dev), preprocessing=pre, core=core)
        except UserError as err:
            raise TrainError(f"{path}: {err}") from None
        provenance = {
            "path": str(path.resolve()),
            "sha256": file_sha256(path),
            "n_showers": len(clouds),
            "n_train": prepared.n_train,
            "n_val": prepared.n_val,
            "n_points": int(clouds.num_points.sum()),
            "particle": clouds.attrs.get("particle"),
            "physics_data": clouds.attrs.get("physics_data"),
        }
        assert clouds.geometry is not None
        return _PointData(prepared, provenance, clouds.geometry.to_json(), spec.own_length)

    return fit(prepare, model, out_dir, cfg, data_kind=DATA_KIND, data_name=str(data), **run_options)
