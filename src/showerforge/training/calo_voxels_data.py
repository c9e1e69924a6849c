"""Shower training data from a CaloChallenge-format file: split, preprocessing fit, batches.

Memory rule: the preprocessed training rows are held in memory as float32 when they take at most
``max_memory_gb`` (default 2 GiB: e.g. 80k ds2 showers); otherwise every epoch streams the file in
chunks (chunk order and rows within a chunk shuffled per epoch). Validation rows
(``round(val_fraction * N)``, at most 10,000) are always held in memory. The split and every
epoch's order depend only on ``seed`` and the epoch index, so a resumed run sees the same batches
as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from showerforge.data.calo import CaloFile, require_clean
from showerforge.data.preprocess import ShowerPreprocessor
from showerforge.errors import UserError
from showerforge.geometry import Geometry

__all__ = ["TrainingData", "MAX_VAL_ROWS"]

MAX_VAL_ROWS = 10_000
_CHUNK = 4096


class TrainingData:
    """Preprocessed training and validation rows of one shower file.

    Args:
        path: CaloChallenge-format HDF5 file.
        val_fraction: fraction of rows held out for validation (at most 10,000 rows).
        seed: seed of the split and of the batch order.
        device: device of the yielded tensors.
        preprocessing: an already fitted preprocessor (when resuming); ``None`` fits a new one
            on the training rows (one streaming pass).
        max_memory_gb: preprocessed training rows up to this size are held in memory.
        preprocessing_options: keyword arguments of a new :class:`ShowerPreprocessor` (e.g.
            ``shape_scale``); unused when ``preprocessing`` is given.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        val_fraction: float,
        seed: int,
        device: torch.device,
        preprocessing: ShowerPreprocessor | None = None,
        max_memory_gb: float = 2.0,
        preprocessing_options: dict[str, Any] | None = None,
    ) -> None:
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.path, self.seed, self.device = Path(path), int(seed), device
        require_clean(self.path, role="training data")
        with CaloFile.open(self.path) as f:
            self.geometry: Geometry = f.geometry
            self.attrs: dict[str, Any] = dict(f.attrs)
            self.n_rows = len(f)
            inc = f.incident_energies()
        self.incident_range_mev = (float(inc.min()), float(inc.max())) if inc.size else (0.0, 0.0)
        n_val = min(int(round(val_fraction * self.n_rows)), MAX_VAL_ROWS)
        if self.n_rows - n_val < 1:
            raise UserError(
                f"{self.path}: {self.n_rows} showers leave no training rows after the validation split; "
                "give more showers or a smaller val_fraction"
            )
        perm = np.random.default_rng(self.seed).permutation(self.n_rows)
        self.is_val = np.zeros(self.n_rows, dtype=bool)
        self.is_val[perm[:n_val]] = True
        self.n_val, self.n_train = n_val, self.n_rows - n_val
        if preprocessing is None:
            preprocessing = ShowerPreprocessor.from_geometry(self.geometry, **(preprocessing_options or {}))
            preprocessing.fit(self._chunks(train=True))
        self.preprocessing = preprocessing
        row_bytes = 4 * (preprocessing.n_features + preprocessing.n_cond)
        self.in_memory = self.n_train * row_bytes <= max_memory_gb * 2**30
        self._train = self._load(train=True) if self.in_memory else None
        self.val = self._load(train=False) if n_val else None

    def _chunks(self, train: bool, order: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        starts = np.arange(0, self.n_rows, _CHUNK)
        if order is not None:
            starts = starts[order]
        with CaloFile.open(self.path) as f:
            for lo in starts:
                inc, sh = f.read(int(lo), int(lo) + _CHUNK)
                keep = self.is_val[lo : lo + len(inc)] != train
                if keep.any():
                    yield inc[keep], sh[keep]

    def _to_tensors(self, inc: np.ndarray, sh: np.ndarray) -> tuple[Tensor, Tensor]:
        cond, x = self.preprocessing.forward(inc, sh)
        return torch.from_numpy(x).to(self.device), torch.from_numpy(cond).to(self.device)

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        parts = [self._to_tensors(inc, sh) for inc, sh in self._chunks(train)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def batches_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps in one epoch (the last, partial batch included)."""
        return -(-self.n_train // batch_size)

    def epoch(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Shuffled training batches ``(x (B, n_features), cond (B, n_cond))`` for one epoch."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self._train is not None:
            x, c = self._train
            perm = torch.randperm(x.shape[0], generator=gen).to(self.device)
            for lo in range(0, x.shape[0], batch_size):
                idx = perm[lo : lo + batch_size]
                yield x[idx], c[idx]
            return
        n_chunks = -(-self.n_rows // _CHUNK)
        order = torch.randperm(n_chunks, generator=gen).numpy()
        buf_x: list[Tensor] = []
        buf_c: list[Tensor] = []
        for inc, sh in self._chunks(train=True, order=order):
            x, c = self._to_tensors(inc, sh)
            perm = torch.randperm(x.shape[0], generator=gen).to(self.device)
            buf_x.append(x[perm])
            buf_c.append(c[perm])
            bx, bc = torch.cat(buf_x), torch.cat(buf_c)
            n_full = bx.shape[0] // batch_size * batch_size
            for lo in range(0, n_full, batch_size):
                yield bx[lo : lo + batch_size], bc[lo : lo + batch_size]
            buf_x, buf_c = [bx[n_full:]], [bc[n_full:]]
        if buf_x and buf_x[0].shape[0]:
            yield buf_x[0], buf_c[0]
