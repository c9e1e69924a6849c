"""Invertible preprocessing of the input blocks: physical units <-> standardised real numbers.

One transform is fitted on source and target together (the map runs between them, so both live
in the same coordinates):

* ``affine`` (shower shapes, jet eta, constituent features): ``u = (x - mean) / std``;
* ``shares`` (layer energies, voxel energies): the total and the shares, so that the tightly
  measured total (E / E_inc resolves to ~1 %) is one input, not a sum of ten or 250: the column
  of the reference layer / voxel (the one with the largest mean share) holds ``log(E / E_inc)``,
  every other column ``log((f_i + eps) / (f_ref + eps))`` with ``f_i = E_i / E`` (additive
  log-ratios, ``eps`` = 1e-4 or, if lower, the 1 % quantile of the non-zero shares of the
  fitted samples, so that fine readouts keep their small deposits); then standardised. The
  inverse gives shares that sum to 1 (shares below ``eps`` read 0) times a total >= 0: energies
  >= 0 in MeV;
* ``log`` (jet pT and mass): ``u = (log(x + eps) - mean) / std``, ``eps`` 1e-3 of the column's mean.

Every inverse first clips the standardised values to the range the fitted samples span, so a
refined event never leaves the region the refiner has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BlockTransform", "fit_transform"]

_SHARE_EPS = 1e-4
_TOTAL_EPS = 1e-6


@dataclass
class BlockTransform:
    """Fitted preprocessing of one block (see module docstring)."""

    block: str
    log_columns: np.ndarray  # bool per column
    eps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    zero_below_eps: bool = False
    per_incident: bool = False
    ref_layer: int = -1  # >= 0: the total + log-ratio parametrisation of layer energies
    share_eps: float = _SHARE_EPS
    low: np.ndarray | None = None  # standardised range seen in the fit (inverse clips to it)
    high: np.ndarray | None = None

    @property
    def width(self) -> int:
        return int(self.mean.shape[0])

    def _scale(self, incident_mev: np.ndarray | None, n: int) -> np.ndarray:
        if not self.per_incident:
            return np.ones((n, 1))
        if incident_mev is None:
            raise ValueError(f"block {self.block!r} needs the incident energies")
        return np.asarray(incident_mev, dtype=np.float64).reshape(-1, 1)

    def forward(self, x: np.ndarray, incident_mev: np.ndarray | None = None) -> np.ndarray:
        """Physical values (N, d) -> standardised (N, d) float32."""
        if self.ref_layer >= 0:
            return (
                (_shares_forward(x, self._scale(incident_mev, len(x)), self.ref_layer, self.share_eps) - self.mean)
                / self.std
            ).astype(np.float32)
        v = np.asarray(x, dtype=np.float64).copy()
        lc = self.log_columns
        if lc.any():
            s = self._scale(incident_mev, len(v))
            v[:, lc] = np.log(np.clip(v[:, lc], 0.0, None) / s + self.eps[lc])
        return ((v - self.mean) / self.std).astype(np.float32)

    def inverse(self, u: np.ndarray, incident_mev: np.ndarray | None = None) -> np.ndarray:
        """Standardised (N, d) -> physical values (N, d) float64, non-negative where log-transformed."""
        u = np.asarray(u, dtype=np.float64)
        if self.low is not None and self.high is not None:
            u = np.clip(u, self.low, self.high)
        v = u * self.std + self.mean
        if self.ref_layer >= 0:
            return _shares_inverse(v, self._scale(incident_mev, len(v)), self.ref_layer, self.share_eps)
        lc = self.log_columns
        if lc.any():
            e = np.exp(np.clip(v[:, lc], -700.0, 700.0)) - self.eps[lc]
            floor = self.eps[lc] if self.zero_below_eps else 0.0
            v[:, lc] = np.where(e < floor, 0.0, np.clip(e, 0.0, None)) * self._scale(incident_mev, len(v))
        return v

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "log_columns": self.log_columns.astype(int).tolist(),
            "eps": self.eps.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "zero_below_eps": self.zero_below_eps,
            "per_incident": self.per_incident,
            "ref_layer": self.ref_layer,
            "share_eps": self.share_eps,
            "low": None if self.low is None else self.low.tolist(),
            "high": None if self.high is None else self.high.tolist(),
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
            per_incident=bool(d.get("per_incident", False)),
            ref_layer=int(d.get("ref_layer", -1)),
            share_eps=float(d.get("share_eps", _SHARE_EPS)),
            low=None if d.get("low") is None else np.asarray(d["low"], dtype=np.float64),
            high=None if d.get("high") is None else np.asarray(d["high"], dtype=np.float64),
        )


def fit_transform(
    block: str, samples: list[np.ndarray], incident_mev: list[np.ndarray | None] | None = None
) -> BlockTransform:
    """Fit the transform of ``block`` on the union of ``samples`` (physical units); its inverse clips
    standardised values to the range the samples span, so a refined event never leaves it."""
    t = _fit(block, samples, incident_mev)
    lows, highs = [], []
    for k, sample in enumerate(samples):  # in chunks: a 30k x 6480 sample needs no second copy
        inc = None if incident_mev is None or t.block not in ("layers", "voxels") else incident_mev[k]
        for lo in range(0, len(sample), 4096):
            part = None if inc is None else np.asarray(inc, dtype=np.float64).reshape(-1)[lo : lo + 4096]
            u = t.forward(np.asarray(sample[lo : lo + 4096], dtype=np.float64), part)
            lows.append(u.min(axis=0))
            highs.append(u.max(axis=0))
    t.low = np.min(lows, axis=0).astype(np.float64)
    t.high = np.max(highs, axis=0).astype(np.float64)
    return t


def _fit(block: str, samples: list[np.ndarray], incident_mev: list[np.ndarray | None] | None = None) -> BlockTransform:
    """Fit the transform of ``block`` on the union of ``samples`` (each (N_i, d), physical units;
    ``incident_mev`` their incident energies, needed by layers and voxels)."""
    per_incident = block in ("layers", "voxels")
    x = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples])
    if block in ("layers", "voxels"):
        assert incident_mev is not None
        inc = np.concatenate([np.asarray(e, dtype=np.float64).reshape(-1, 1) for e in incident_mev])
        shares = x / np.maximum(x.sum(axis=1, keepdims=True), 1e-300)
        ref = int(np.argmax(shares.mean(axis=0)))
        positive = shares[shares > 0]
        # below the smallest real deposits: 1e-4, or the 1 % quantile of the non-zero shares if lower
        share_eps = float(min(_SHARE_EPS, max(np.quantile(positive, 0.01), 1e-9))) if positive.size else _SHARE_EPS
        v = _shares_forward(x, inc, ref, share_eps)
        mean, std = v.mean(axis=0), v.std(axis=0)
        std = np.where(std > 1e-9, std, 1.0)
        d = x.shape[1]
        return BlockTransform(block, np.zeros(d, bool), np.zeros(d), mean, std, False, True, ref, share_eps=share_eps)
    if per_incident:
        assert incident_mev is not None
        x = x / np.concatenate([np.asarray(e, dtype=np.float64).reshape(-1, 1) for e in incident_mev])
    d = x.shape[1]
    if block == "jet":
        log_columns = np.array([True, False, True])
    else:
        log_columns = np.zeros(d, dtype=bool)
    eps = np.zeros(d)
    if log_columns.any():
        eps[log_columns] = 1e-3 * np.abs(x[:, log_columns]).mean(axis=0) + 1e-9
    v = x.copy()
    v[:, log_columns] = np.log(np.clip(v[:, log_columns], 0.0, None) + eps[log_columns])
    mean = v.mean(axis=0)
    std = v.std(axis=0)
    std = np.where(std > 1e-6 * (np.abs(mean) + 1.0), std, 1.0)
    return BlockTransform(block, log_columns, eps, mean, std, False, per_incident)


def _shares_forward(x: np.ndarray, scale: np.ndarray, ref: int, eps: float = _SHARE_EPS) -> np.ndarray:
    """Layer energies -> [log-ratios of shares, with log(E / E_inc) in the reference column]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, None)
    tot = x.sum(axis=1, keepdims=True)
    f = np.where(tot > 0, x / np.where(tot > 0, tot, 1.0), 1.0 / x.shape[1])
    v = np.log(f + eps) - np.log(f[:, ref : ref + 1] + eps)
    v[:, ref] = np.log(tot[:, 0] / scale[:, 0] + _TOTAL_EPS)
    return v


def _shares_inverse(v: np.ndarray, scale: np.ndarray, ref: int, eps: float = _SHARE_EPS) -> np.ndarray:
    """Inverse of :func:`_shares_forward`: layer energies >= 0 (MeV) whose shares sum to 1."""
    tot = np.clip(np.exp(np.clip(v[:, ref], -700.0, 700.0)) - _TOTAL_EPS, 0.0, None) * scale[:, 0]
    r = v.copy()
    r[:, ref] = 0.0
    r = np.exp(np.clip(r, -700.0, 700.0))
    d = v.shape[1]
    f = r * ((1.0 + d * eps) / r.sum(axis=1, keepdims=True)) - eps
    f[f < eps] = 0.0  # below eps of the total: empty (where every empty cell maps)
    f /= np.maximum(f.sum(axis=1, keepdims=True), 1e-300)
    return f * tot[:, None]
