"""Invertible preprocessing of the input blocks: physical units <-> standardised real numbers.

One transform is fitted on source and target together (the map runs between them, so both live
in the same coordinates):

* ``affine`` (shower shapes, jet eta, constituent features): ``u = (x - mean) / std``;
* ``log`` (layer energies, voxel energies, jet pT and mass): ``u = (log(x + eps) - mean) / std``
  with ``eps`` per column (layers, jets: 1e-3 of the column's mean; voxels: one value, the 5 %
  quantile of the non-zero voxel energies). The inverse clips at 0, and for voxels sets energies
  below ``eps`` to 0 (a readout threshold at ``eps``), so refined showers stay non-negative
  and in MeV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BlockTransform", "fit_transform"]

_LOG_BLOCKS = {"layers", "voxels"}


@dataclass
class BlockTransform:
    """Fitted preprocessing of one block (see module docstring)."""

    block: str
    log_columns: np.ndarray  # bool per column
    eps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    zero_below_eps: bool = False

    @property
    def width(self) -> int:
        return int(self.mean.shape[0])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Physical values (N, d) -> standardised (N, d) float32."""
        v = np.asarray(x, dtype=np.float64).copy()
        lc = self.log_columns
        if lc.any():
            v[:, lc] = np.log(np.clip(v[:, lc], 0.0, None) + self.eps[lc])
        return ((v - self.mean) / self.std).astype(np.float32)

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """Standardised (N, d) -> physical values (N, d) float64, non-negative where log-transformed."""
        v = np.asarray(u, dtype=np.float64) * self.std + self.mean
        lc = self.log_columns
        if lc.any():
            e = np.exp(np.clip(v[:, lc], -700.0, 700.0)) - self.eps[lc]
            floor = self.eps[lc] if self.zero_below_eps else 0.0
            v[:, lc] = np.where(e < floor, 0.0, np.clip(e, 0.0, None))
        return v

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "log_columns": self.log_columns.astype(int).tolist(),
            "eps": self.eps.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "zero_below_eps": self.zero_below_eps,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockTransform:
        return cls(
            block=str(d["block"]),
            log_columns=np.asarray(d["log_columns"], dtype=bool),
            eps=np.asarray(d["eps"], dtype=np.float64),
            mean=np.asarray(d["mean"], dtype=np.float64),
            std=np.asarray(d["std"], dtype=np.float64),
            zero_below_eps=bool(d.get("zero_below_eps", False)),
        )


def fit_transform(block: str, *samples: np.ndarray) -> BlockTransform:
    """Fit the transform of ``block`` on the union of ``samples`` (each (N_i, d), physical units)."""
    x = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples])
    d = x.shape[1]
    if block in _LOG_BLOCKS:
        log_columns = np.ones(d, dtype=bool)
    elif block == "jet":
        log_columns = np.array([True, False, True])
    else:
        log_columns = np.zeros(d, dtype=bool)
    eps = np.zeros(d)
    zero_below = False
    if block == "voxels":
        pos = x[x > 0]
        eps[:] = float(np.quantile(pos, 0.05)) if pos.size else 1e-3
        zero_below = True
    elif log_columns.any():
        eps[log_columns] = 1e-3 * np.abs(x[:, log_columns]).mean(axis=0) + 1e-9
    v = x.copy()
    v[:, log_columns] = np.log(np.clip(v[:, log_columns], 0.0, None) + eps[log_columns])
    mean = v.mean(axis=0)
    std = v.std(axis=0)
    std = np.where(std > 1e-6 * (np.abs(mean) + 1.0), std, 1.0)
    return BlockTransform(block, log_columns, eps, mean, std, zero_below)
