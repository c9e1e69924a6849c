"""Invertible preprocessing of voxelised showers, fitted on training data and saved with a model.

The model never sees MeV. :class:`ShowerPreprocessor` maps a shower to a factorised
representation, as the best shower models do (CaloDREAM, arXiv:2405.09629: layer energies first,
then the normalised shape of each layer):

* condition ``c = standardise(log E_inc)`` with ``E_inc`` in MeV, shape (N, 1) (a vector, so angle
  or geometry features can be appended later);
* the layer energies ``E_l`` in stick-breaking form (as CaloFlow, Krause & Shih,
  arXiv:2106.05285): the total ``log(E_tot / E_inc + frac_eps)`` and, for every layer but the
  last, the share of the energy not yet assigned to earlier layers,
  ``s_l = E_l / (E_l + ... + E_{L-1})`` in [0, 1], mapped by ``logit(alpha + (1 - 2 alpha) s_l)``;
  all standardised per feature. The total energy, the best-measured quantity of a shower, is
  thus one feature, and any generated values give non-negative layer energies summing to the
  generated total. Generated values are clipped to the range seen in training;
* per voxel the layer shape ``s_v = e_v / max(E_l, n_l delta)`` (``n_l`` voxels in the layer) mapped
  by ``logit(alpha + (1 - 2 alpha) s_v)`` and standardised per voxel.

Zeros are dequantised (as CaloFlow, arXiv:2106.05285, and CaloDREAM do): voxels below the
threshold ``delta`` (``threshold_mev``) count as empty, and every empty voxel gets an energy
``u rho delta`` with ``u`` uniform in (0, 1) and ``rho = noise_scale`` (0.1), every empty layer an
energy ``u rho delta`` too. A shower is thus a point of a continuous density, instead of a spike at
``logit(alpha)`` that a flow smears into a tail of spurious soft voxels; the gap between
``rho delta`` and ``delta`` keeps what the flow smears of the empty voxels (most voxels) below the
threshold (with ``rho = 1`` the mass piled just under ``delta`` leaks over it: twice the true number
of non-zero voxels on ``mini``). The noise is a hash of (``seed``, the shower's bytes, the feature
index): the same shower always gets the same noise, whatever the chunking, so fits and resumed
runs are reproducible.

``delta`` defaults to the ``threshold_quantile`` (1 %) quantile of the non-zero voxel energies of the
first ``threshold_rows`` training showers (few real voxels are that soft; the 1e-7 MeV stragglers
of Geant4 files are far below it).

:meth:`ShowerPreprocessor.inverse` is exact up to float rounding on training data (voxels below
``delta`` come back as 0). On generated data it clips features to their training range, empties
layers whose energy is below ``delta``, zeroes voxels below ``delta`` and then rescales the kept
voxels of each layer to the generated layer energy, so layer energies and the total are kept
exactly and no voxel is softer than ``delta`` (the hardest voxel of a layer is always kept).

Every object has ``fit`` / ``forward`` / ``inverse`` / ``state_dict`` / ``load_state_dict``; the
state is JSON-serialisable (plain floats and lists). This module is numpy only (no torch).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from showerforge.errors import UserError

__all__ = [
    "EnergyBinnedStandardize",
    "Standardize",
    "ShowerPreprocessor",
    "PREPROCESSORS",
    "preprocessor_from_state",
    "hash_uniform",
]

_STD_FLOOR = 1e-6

SHAPE_SCALES = ("layer", "mev")
"""Voxel feature scales of :class:`ShowerPreprocessor` (``shape_scale``)."""
MEV_FLOOR = 1e-4
"""``shape_scale="mev"``: voxel feature ``log(e / delta + MEV_FLOOR)``."""


class Standardize:
    """Per-feature affine map ``z = (x - mean) / std``, fitted in streaming passes.

    Features whose standard deviation is below 1e-6 (constant in training) get ``std = 1``.

    Args:
        n_features: width of the arrays it transforms.
    """

    def __init__(self, n_features: int) -> None:
        self.n_features = int(n_features)
        self.mean = np.zeros(self.n_features)
        self.std = np.ones(self.n_features)
        self._n = 0
        self._sum = np.zeros(self.n_features)
        self._sumsq = np.zeros(self.n_features)

    def partial_fit(self, x: np.ndarray) -> Standardize:
        """Accumulate statistics of ``x`` (n, n_features); call :meth:`finalize` after the last chunk."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.n_features)
        self._n += x.shape[0]
        self._sum += x.sum(axis=0)
        self._sumsq += (x * x).sum(axis=0)
        return self

    def finalize(self) -> Standardize:
        """Turn the accumulated sums into ``mean`` and ``std``."""
        if self._n == 0:
            raise ValueError("Standardize.finalize: no data was seen")
        self.mean = self._sum / self._n
        var = np.maximum(self._sumsq / self._n - self.mean**2, 0.0)
        std = np.sqrt(var)
        self.std = np.where(std < _STD_FLOOR, 1.0, std)
        return self

    def fit(self, x: np.ndarray) -> Standardize:
        """Fit on one array (n, n_features)."""
        return self.partial_fit(x).finalize()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features) -> standardised (n, n_features)."""
        return (x - self.mean) / self.std

    def inverse(self, z: np.ndarray, dtype: npt.DTypeLike = np.float64) -> np.ndarray:
        """Inverse of :meth:`forward`, computed in ``dtype``."""
        t = np.dtype(dtype)
        return np.asarray(z, dtype=t) * self.std.astype(t) + self.mean.astype(t)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"n_features": self.n_features, "mean": self.mean.tolist(), "std": self.std.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.n_features = int(state["n_features"])
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.std = np.asarray(state["std"], dtype=np.float64)
        if self.mean.shape != (self.n_features,) or self.std.shape != (self.n_features,):
            raise ValueError(f"Standardize state: expected {self.n_features} means and stds")


class EnergyBinnedStandardize:
    """Per-feature standardisation whose mean and std follow a variable ``L`` (the log incident energy).

    Statistics are accumulated in fine bins of ``L`` (width ``fine``), merged at :meth:`finalize`
    into ``n_bins`` bins of equal counts; :meth:`forward` interpolates each feature's mean and std
    linearly in ``L`` between the bins' mean ``L`` (constant beyond the first and last). With
    ``n_bins = 1`` it is :class:`Standardize`. A model that does not fully resolve how a feature's
    distribution moves with the condition then errs relative to the conditional spread, not the
    spread over the whole energy range.

    Args:
        n_features: width of the arrays it transforms.
        n_bins: bins of ``L`` after merging.
        fine: width of the accumulation bins in ``L`` (log MeV, 0.25 = 28 % in energy).
    """

    _L_MIN, _L_MAX = -5.0, 20.0  # log MeV: 7 keV .. 500 TeV

    def __init__(self, n_features: int, n_bins: int, fine: float = 0.25) -> None:
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_features, self.n_bins, self.fine = int(n_features), int(n_bins), float(fine)
        self.centres = np.zeros(1)
        self.mean = np.zeros((1, self.n_features))
        self.std = np.ones((1, self.n_features))
        n_fine = int(np.ceil((self._L_MAX - self._L_MIN) / self.fine))
        self._n = np.zeros(n_fine)
        self._sum_l = np.zeros(n_fine)
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None
        self._min: np.ndarray | None = None
        self._max: np.ndarray | None = None
        self.low: np.ndarray = np.full((1, self.n_features), -np.inf)
        self.high: np.ndarray = np.full((1, self.n_features), np.inf)
        self._cast: dict[str, tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]] = {}

    def partial_fit(self, x: np.ndarray, log_e: np.ndarray) -> EnergyBinnedStandardize:
        """Accumulate ``x`` (n, n_features) at ``log_e`` (n,); call :meth:`finalize` after the last chunk."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.n_features)
        if self._sum is None or self._sumsq is None or self._min is None or self._max is None:
            self._sum = np.zeros((len(self._n), self.n_features))
            self._sumsq = np.zeros((len(self._n), self.n_features))
            self._min = np.full((len(self._n), self.n_features), np.inf)
            self._max = np.full((len(self._n), self.n_features), -np.inf)
        k = np.clip(
            ((np.asarray(log_e, dtype=np.float64) - self._L_MIN) / self.fine).astype(np.int64), 0, len(self._n) - 1
        )
        np.add.at(self._n, k, 1.0)
        np.add.at(self._sum_l, k, log_e)
        for b in np.unique(k):
            rows = x[k == b]
            self._sum[b] += rows.sum(axis=0)
            self._sumsq[b] += (rows * rows).sum(axis=0)
            self._min[b] = np.minimum(self._min[b], rows.min(axis=0))
            self._max[b] = np.maximum(self._max[b], rows.max(axis=0))
        return self

    def finalize(self) -> EnergyBinnedStandardize:
        """Merge the fine bins into ``n_bins`` bins of equal counts and fix mean and std."""
        if self._sum is None or self._sumsq is None or self._min is None or self._max is None or self._n.sum() == 0:
            raise ValueError("EnergyBinnedStandardize.finalize: no data was seen")
        used = np.nonzero(self._n)[0]
        cum = np.cumsum(self._n[used])
        group = np.minimum((self.n_bins * (cum - self._n[used]) / cum[-1]).astype(np.int64), self.n_bins - 1)
        centres, means, stds, lows, highs = [], [], [], [], []
        for g in np.unique(group):
            b = used[group == g]
            n = self._n[b].sum()
            mean = self._sum[b].sum(axis=0) / n
            std = np.sqrt(np.maximum(self._sumsq[b].sum(axis=0) / n - mean**2, 0.0))
            centres.append(self._sum_l[b].sum() / n)
            means.append(mean)
            stds.append(np.where(std < _STD_FLOOR, 1.0, std))
            lows.append(self._min[b].min(axis=0))
            highs.append(self._max[b].max(axis=0))
        self.centres, self.mean, self.std = np.asarray(centres), np.asarray(means), np.asarray(stds)
        self.low, self.high = np.asarray(lows), np.asarray(highs)
        return self

    def _at(self, log_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated (mean, std), each (n, n_features)."""
        c = self.centres
        if len(c) == 1:
            return self.mean[[0]], self.std[[0]]
        log_e = np.asarray(log_e, dtype=np.float64).reshape(-1)
        hi = np.clip(np.searchsorted(c, log_e), 1, len(c) - 1)
        lo = hi - 1
        w = np.clip((log_e - c[lo]) / (c[hi] - c[lo]), 0.0, 1.0)[:, None]
        return (1 - w) * self.mean[lo] + w * self.mean[hi], (1 - w) * self.std[lo] + w * self.std[hi]

    def forward(self, x: np.ndarray, log_e: np.ndarray) -> np.ndarray:
        """(n, n_features) at ``log_e`` (n,) -> standardised (n, n_features)."""
        mean, std = self._at(log_e)
        return (x - mean) / std

    def _interval(self, log_e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bins (lo, hi) each ``log_e`` interpolates between and its weight ``w`` (n, 1) on ``hi``."""
        log_e = np.asarray(log_e, dtype=np.float64).reshape(-1)
        c = self.centres
        if len(c) == 1:
            zero = np.zeros(log_e.size, dtype=np.int64)
            return zero, zero, np.zeros((log_e.size, 1))
        hi = np.clip(np.searchsorted(c, log_e), 1, len(c) - 1)
        lo = hi - 1
        return lo, hi, np.clip((log_e - c[lo]) / (c[hi] - c[lo]), 0.0, 1.0)[:, None]

    def inverse(self, z: np.ndarray, log_e: np.ndarray, dtype: npt.DTypeLike = np.float64) -> np.ndarray:
        """Inverse of :meth:`forward` in ``dtype``, clipped to the range each feature had in training at
        that ``L`` (the union of the two bins the interpolation uses, so training data is never clipped).

        In float64 the values are those of :meth:`forward`'s interpolation; float32 halves the memory
        traffic (relative differences of float32 rounding, ~1e-7).
        """
        t = np.dtype(dtype)
        mean, std, low, high = self._tables(t)
        lo, hi, w = self._interval(log_e)
        w_hi, w_lo = w.astype(t), (1 - w).astype(t)
        scale = std[lo] * w_lo
        scale += std[hi] * w_hi
        out = np.asarray(z, dtype=t) * scale
        out += mean[lo] * w_lo
        out += mean[hi] * w_hi
        return np.clip(out, low[lo], high[lo], out=out)

    def _tables(self, t: np.dtype[Any]) -> tuple[np.ndarray, ...]:
        """(mean, std, low, high) in ``t``; low/high: the union of each pair of neighbouring bins, one
        row per interval. Cached until an array is replaced."""
        src = (self.centres, self.mean, self.std, self.low, self.high)
        hit = self._cast.get(t.str)
        if hit is None or any(a is not b for a, b in zip(hit[0], src)):
            low, high = self.low, self.high
            if len(self.centres) > 1:
                low, high = np.minimum(low[:-1], low[1:]), np.maximum(high[:-1], high[1:])
            hit = (src, tuple(a.astype(t) for a in (self.mean, self.std, low, high)))
            self._cast[t.str] = hit
        return hit[1]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "n_features": self.n_features,
            "n_bins": self.n_bins,
            "fine": self.fine,
            "centres": self.centres.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.n_features, self.n_bins, self.fine = int(state["n_features"]), int(state["n_bins"]), float(state["fine"])
        self.centres = np.asarray(state["centres"], dtype=np.float64)
        self.mean = np.asarray(state["mean"], dtype=np.float64).reshape(len(self.centres), self.n_features)
        self.std = np.asarray(state["std"], dtype=np.float64).reshape(len(self.centres), self.n_features)
        shape = (len(self.centres), self.n_features)
        self.low = np.asarray(state.get("low", np.full(shape, -np.inf)), dtype=np.float64).reshape(shape)
        self.high = np.asarray(state.get("high", np.full(shape, np.inf)), dtype=np.float64).reshape(shape)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _exp_sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))``: in float32 accurate relative to small outputs (``1 + tanh`` is not)."""
    out = np.negative(z)
    with np.errstate(over="ignore"):  # exp(-z) = inf gives the exact limit 0
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of a uint64 array (wrapping arithmetic), elementwise."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, incident_mev: np.ndarray, showers_mev: np.ndarray, n: int) -> np.ndarray:
    """Uniform numbers in (0, 1), shape (N, n), a deterministic function of each row's content.

    Row ``i`` depends only on ``seed``, ``incident_mev[i]`` and ``showers_mev[i]`` (as float32 bits),
    so the numbers do not depend on how the rows are chunked.
    """
    sh = np.ascontiguousarray(showers_mev, dtype=np.float32).view(np.uint32).astype(np.uint64)
    col = np.arange(sh.shape[1], dtype=np.uint64) * _GOLDEN
    inc = np.ascontiguousarray(np.asarray(incident_mev, dtype=np.float32).reshape(-1, 1)).view(np.uint32)
    key = _mix(sh + col).sum(axis=1, dtype=np.uint64) ^ _mix(inc.astype(np.uint64))[:, 0]
    key = _mix(key ^ np.full(1, zlib.crc32(str(int(seed)).encode()), dtype=np.uint64))
    bits = _mix(key[:, None] ^ (np.arange(n, dtype=np.uint64) * _GOLDEN)[None, :])
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


class ShowerPreprocessor:
    """Voxel showers (MeV) <-> factorised, standardised features (see module docstring).

    Args:
        layer_sizes: voxels per readout layer (``[g.readout[l].n_voxels for l ...]``; zeros allowed).
        alpha: logit regulariser of the shapes (CaloDREAM uses 1e-6).
        frac_eps: floor inside ``log(E_tot / E_inc + frac_eps)``.
        threshold_mev: ``delta``: voxels (and layers) below this energy (MeV) are empty, in training
            and in generated showers; ``None`` fits it (``threshold_quantile``).
        threshold_quantile: quantile of the non-zero training voxel energies that sets ``delta``.
        threshold_rows: ``delta`` is fitted on this many first training showers (held in memory
            until then; chunking does not matter).
        dequantize: fill empty voxels and layers with noise below ``delta`` in :meth:`forward`
            (off: they map to the constant ``logit(alpha)``).
        noise_scale: the noise is uniform in ``(0, noise_scale * delta)`` MeV; below 1 it leaves a
            gap under ``delta`` that keeps the generated empty voxels clear of the threshold.
        seed: seed of the dequantisation noise.

    Shapes:
        ``forward(incident (N,), showers (N, n_voxels)) -> (cond (N, 1), x (N, n_features))`` with
        ``n_features = n_voxels + number of layers with voxels``.

    Example:
        >>> pre = ShowerPreprocessor.from_geometry(geometry).fit(chunks)
        >>> cond, x = pre.forward(inc, showers)
        >>> showers_back = pre.inverse(inc, x)
    """

    kind = "calo-factorised"
    """Name in :data:`PREPROCESSORS` and in saved states."""

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        alpha: float = 1e-6,
        frac_eps: float = 1e-7,
        threshold_mev: float | None = None,
        threshold_quantile: float = 1e-2,
        threshold_rows: int = 1000,
        dequantize: bool = True,
        noise_scale: float = 0.1,
        seed: int = 0,
        shape_scale: str = "layer",
        shape_energy_bins: int = 0,
    ) -> None:
        self.layer_sizes = [int(n) for n in layer_sizes]
        if not self.layer_sizes or min(self.layer_sizes) < 0 or max(self.layer_sizes) == 0:
            raise ValueError(f"layer_sizes must be non-negative with at least one voxel, got {self.layer_sizes}")
        if not 0.0 <= threshold_quantile < 1.0 or threshold_rows < 1:
            raise ValueError(
                f"need 0 <= threshold_quantile < 1 and threshold_rows >= 1, got {threshold_quantile}, {threshold_rows}"
            )
        if not 0.0 < noise_scale <= 1.0:
            raise ValueError(f"noise_scale must be in (0, 1], got {noise_scale}")
        if threshold_mev is not None and not threshold_mev >= 0.0:
            raise ValueError(f"threshold_mev must be >= 0, got {threshold_mev}")
        self.alpha = float(alpha)
        self.frac_eps = float(frac_eps)
        self.threshold_mev = None if threshold_mev is None else float(threshold_mev)
        self.threshold_quantile = float(threshold_quantile)
        self.threshold_rows = int(threshold_rows)
        self.dequantize = bool(dequantize)
        self.noise_scale = float(noise_scale)
        self.seed = int(seed)
        if shape_scale not in SHAPE_SCALES:
            raise UserError(f"shape_scale must be one of {SHAPE_SCALES}, got {shape_scale!r}")
        self.shape_scale = shape_scale
        if shape_energy_bins < 0:
            raise UserError(f"shape_energy_bins must be >= 0, got {shape_energy_bins}")
        self.shape_energy_bins = int(shape_energy_bins)
        self.offsets = np.concatenate([[0], np.cumsum(self.layer_sizes)]).astype(np.int64)
        self.active = [i for i, n in enumerate(self.layer_sizes) if n > 0]
        self.cond_std = Standardize(1)
        self.energy_std = Standardize(len(self.active))
        self.shape_std: Standardize | EnergyBinnedStandardize = (
            EnergyBinnedStandardize(self.n_voxels, self.shape_energy_bins)
            if self.shape_energy_bins
            else Standardize(self.n_voxels)
        )
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.y_min = np.full(len(self.active), np.inf)
        self.y_max = np.full(len(self.active), -np.inf)
        self._build_index()

    # ------------------------------------------------------------ sizes
    @classmethod
    def from_geometry(cls, geometry: Any, **kwargs: Any) -> ShowerPreprocessor:
        """Build for a :class:`showerforge.geometry.Geometry` (``kwargs`` as in the constructor)."""
        return cls([layer.n_voxels for layer in geometry.readout], **kwargs)

    @property
    def n_voxels(self) -> int:
        """Width of the ``showers`` array."""
        return int(self.offsets[-1])

    @property
    def n_features(self) -> int:
        """Width of the feature array ``x``."""
        return self.n_voxels + len(self.active)

    @property
    def n_cond(self) -> int:
        """Width of the condition vector (1: log incident energy)."""
        return 1

    @property
    def token_sizes(self) -> list[int]:
        """Features per layer token, ``1 + n_voxels(l)`` for each layer with voxels."""
        return [1 + self.layer_sizes[i] for i in self.active]

    @property
    def _delta(self) -> float:
        return self.threshold_mev or 0.0

    @property
    def _mev_unit(self) -> float:
        """Voxel energy unit of ``shape_scale="mev"``: ``delta`` (1 MeV when there is no threshold)."""
        return self._delta if self._delta > 0 else 1.0

    def _build_index(self) -> None:
        # positions of the energy feature and of the voxel features inside the interleaved x
        e_pos: list[int] = []
        v_pos: list[int] = []
        pos = 0
        for i in self.active:
            e_pos.append(pos)
            v_pos.extend(range(pos + 1, pos + 1 + self.layer_sizes[i]))
            pos += 1 + self.layer_sizes[i]
        self._e_pos = np.asarray(e_pos, dtype=np.int64)
        self._v_pos = np.asarray(v_pos, dtype=np.int64)
        # layer index of every voxel (columns of the showers array)
        self._voxel_layer = np.repeat(np.arange(len(self.layer_sizes)), self.layer_sizes)
        # position of each active layer among the active layers
        self._active_of_voxel = np.searchsorted(np.asarray(self.active), self._voxel_layer)
        self._active_sizes = np.asarray([self.layer_sizes[i] for i in self.active], dtype=np.float64)

    # ------------------------------------------------------------ pieces
    def _check(self, incident_mev: np.ndarray, showers_mev: np.ndarray | None = None) -> np.ndarray:
        inc = np.asarray(incident_mev, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(inc)) or np.any(inc <= 0):
            raise ValueError("incident energies must be finite and > 0 MeV")
        if showers_mev is not None:
            sh = np.asarray(showers_mev)
            if sh.ndim != 2 or sh.shape != (inc.shape[0], self.n_voxels):
                raise UserError(
                    f"showers: expected shape ({inc.shape[0]}, {self.n_voxels}) (the voxels of this preprocessing's "
                    f"geometry), got {sh.shape}"
                )
        return inc

    def _layer_energies(self, showers: np.ndarray) -> np.ndarray:
        """(N, n_voxels) -> (N, n_active) layer energies."""
        return np.add.reduceat(showers, self.offsets[:-1][self.active], axis=1)

    def _scale(self, e_layer: np.ndarray) -> np.ndarray:
        """Shape denominators ``max(E_l, n_l delta)`` per voxel, (N, n_active) -> (N, n_voxels)."""
        return np.maximum(e_layer, self._active_sizes * self._delta)[:, self._active_of_voxel]

    def _raw(self, inc: np.ndarray, showers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unstandardised (log E_inc, [logit stick fractions, log total fraction], logit shapes)."""
        delta = self._delta
        sh = np.asarray(showers, dtype=np.float64)
        sh = np.where(sh >= delta, np.clip(sh, 0.0, None), 0.0)
        e_layer = self._layer_energies(sh)
        if self.dequantize and delta > 0:
            u = hash_uniform(self.seed, inc, showers, self.n_features)
            low = self.noise_scale * delta
            sh = np.where(sh > 0, sh, low * u[:, : self.n_voxels])
            e_layer = np.where(e_layer > 0, e_layer, low * u[:, self.n_voxels :])
        remaining = np.cumsum(e_layer[:, ::-1], axis=1)[:, ::-1]  # E_l + ... + E_{L-1}
        stick = np.divide(
            e_layer[:, :-1], remaining[:, :-1], out=np.zeros_like(e_layer[:, :-1]), where=remaining[:, :-1] > 0
        )
        y = np.concatenate(
            [
                _logit(self.alpha + (1.0 - 2.0 * self.alpha) * np.clip(stick, 0.0, 1.0)),
                np.log(remaining[:, :1] / inc[:, None] + self.frac_eps),
            ],
            axis=1,
        )
        if self.shape_scale == "mev":
            z = np.log(sh / self._mev_unit + MEV_FLOOR)
        else:
            denom = self._scale(e_layer)
            shape = np.divide(sh, denom, out=np.zeros_like(sh), where=denom > 0)
            z = _logit(self.alpha + (1.0 - 2.0 * self.alpha) * np.clip(shape, 0.0, 1.0))
        return np.log(inc)[:, None], y, z

    # ------------------------------------------------------------ fit
    def partial_fit(self, incident_mev: np.ndarray, showers_mev: np.ndarray) -> ShowerPreprocessor:
        """Accumulate statistics from one chunk; call :meth:`finalize` after the last one.

        While ``delta`` is still to be fitted, chunks are held until ``threshold_rows`` showers
        have been seen.
        """
        inc = self._check(incident_mev, showers_mev)
        if self.threshold_mev is not None:
            return self._accumulate(inc, showers_mev)
        self._pending.append((inc, np.array(showers_mev, dtype=np.float32)))
        if sum(len(p[0]) for p in self._pending) >= self.threshold_rows:
            self._flush()
        return self

    def _flush(self) -> None:
        """Fit ``delta`` on the first ``threshold_rows`` held showers, then accumulate them all."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        first = np.concatenate([p[1] for p in pending])[: self.threshold_rows]
        pos = first[first > 0].astype(np.float64)
        self.threshold_mev = float(np.quantile(pos, self.threshold_quantile)) if pos.size else 0.0
        for inc, sh in pending:
            self._accumulate(inc, sh)

    def _accumulate(self, inc: np.ndarray, showers_mev: np.ndarray) -> ShowerPreprocessor:
        u, y, z = self._raw(inc, showers_mev)
        self.cond_std.partial_fit(u)
        self.energy_std.partial_fit(y)
        if isinstance(self.shape_std, EnergyBinnedStandardize):
            self.shape_std.partial_fit(z, u[:, 0])
        else:
            self.shape_std.partial_fit(z)
        self.y_min = np.minimum(self.y_min, y.min(axis=0))
        self.y_max = np.maximum(self.y_max, y.max(axis=0))
        return self

    def finalize(self) -> ShowerPreprocessor:
        """Fix ``delta`` (if not yet) and the standardisation after :meth:`partial_fit` calls."""
        self._flush()
        self.cond_std.finalize()
        self.energy_std.finalize()
        self.shape_std.finalize()
        return self

    def fit(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> ShowerPreprocessor:
        """Fit on an iterable of (incident (n,) MeV, showers (n, n_voxels) MeV) chunks (one pass)."""
        for inc, sh in chunks:
            self.partial_fit(inc, sh)
        return self.finalize()

    # ------------------------------------------------------------ transforms
    def condition(self, incident_mev: np.ndarray) -> np.ndarray:
        """Incident energies (N,) MeV -> condition vectors (N, 1), float32."""
        inc = self._check(incident_mev)
        return self.cond_std.forward(np.log(inc)[:, None]).astype(np.float32)

    def forward(self, incident_mev: np.ndarray, showers_mev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(incident (N,) MeV, showers (N, n_voxels) MeV) -> (cond (N, 1), x (N, n_features)), float32.

        Deterministic: empty voxels get the same dequantisation noise on every call.
        """
        inc = self._check(incident_mev, showers_mev)
        u, y, z = self._raw(inc, showers_mev)
        x = np.empty((inc.shape[0], self.n_features), dtype=np.float64)
        x[:, self._e_pos] = self.energy_std.forward(y)
        x[:, self._v_pos] = self._shape_forward(z, u[:, 0])
        return self.cond_std.forward(u).astype(np.float32), x.astype(np.float32)

    def inverse(self, incident_mev: np.ndarray, x: np.ndarray, *, dtype: npt.DTypeLike = np.float64) -> np.ndarray:
        """Features (N, n_features) + incident (N,) MeV -> showers (N, n_voxels) MeV, float32, >= 0.

        Energy features are clipped to the range seen in training and shapes to [0, 1]; layers
        with energy below ``delta`` are emptied; in every other layer voxels below ``delta`` are
        set to 0 (the hardest one is always kept) and the kept voxels are rescaled to sum to the
        layer energy. Every voxel is thus 0 or >= ``delta`` and every layer keeps its generated
        energy (a layer whose shape is all 0 stays empty).

        Args:
            incident_mev: (N,) incident energies in MeV.
            x: (N, n_features) features (float32 from a model).
            dtype: precision of the per-voxel work. The layer energies are always float64;
                ``np.float32`` computes the voxels in float32 (twice faster: half the memory
                traffic): voxels then agree with float64 to ~1e-6 relative, except a voxel within
                float32 rounding of ``delta``, which one precision may keep and the other drop
                (the rest of its layer is then rescaled by the other side's share).
        """
        work = np.dtype(dtype)
        if work not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {work}")
        inc = self._check(incident_mev)
        x = np.asarray(x)
        if x.shape != (inc.shape[0], self.n_features):
            raise ValueError(f"features: expected shape ({inc.shape[0]}, {self.n_features}), got {x.shape}")
        y = np.clip(self.energy_std.inverse(x[:, self._e_pos]), self.y_min, self.y_max)
        e_layer = self._stick_inverse(y, inc)
        e_layer[e_layer < self._delta] = 0.0
        z = self._shape_inverse(x[:, self._v_pos], np.log(inc), work)
        if self.shape_scale == "mev":
            showers = np.clip(self._mev_unit * (np.exp(np.minimum(z, 50.0)) - MEV_FLOOR), 0.0, None)
        else:
            shape = _sigmoid(z) if work == np.float64 else _exp_sigmoid(z)
            shape -= self.alpha
            shape /= 1.0 - 2.0 * self.alpha
            showers = np.clip(shape, 0.0, 1.0, out=shape)
            showers *= self._scale(e_layer).astype(work)
        e_work = e_layer.astype(work)
        sizes = {self.layer_sizes[i] for i in self.active}
        if len(sizes) == 1 and len(self.active) == len(self.layer_sizes):  # regular mesh: all layers at once
            n, per = showers.shape[0], sizes.pop()
            flat = self._threshold_layer(showers.reshape(-1, per), e_work.reshape(-1))
            return flat.reshape(n, -1).astype(np.float32, copy=False)
        for k, i in enumerate(self.active):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            showers[:, lo:hi] = self._threshold_layer(showers[:, lo:hi], e_work[:, k])
        return showers.astype(np.float32, copy=False)

    def _shape_forward(self, z: np.ndarray, log_e: np.ndarray) -> np.ndarray:
        if isinstance(self.shape_std, EnergyBinnedStandardize):
            return self.shape_std.forward(z, log_e)
        return self.shape_std.forward(z)

    def _shape_inverse(self, x: np.ndarray, log_e: np.ndarray, dtype: npt.DTypeLike = np.float64) -> np.ndarray:
        if isinstance(self.shape_std, EnergyBinnedStandardize):
            return self.shape_std.inverse(x, log_e, dtype)
        return self.shape_std.inverse(x, dtype)

    def _threshold_layer(self, v: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Zero voxels below ``delta`` (keeping the hardest) and rescale to sum ``e``; (N, n), (N,), one dtype."""
        rows = np.arange(v.shape[0])
        top = v.argmax(axis=1)
        for _ in range(2):  # the first rescale may push voxels below delta; the second only raises
            keep = v >= self._delta
            keep[rows, top] = True
            v = np.where(keep & (e[:, None] > 0), v, 0.0)
            total = v.sum(axis=1)
            v = v * np.divide(e, total, out=np.zeros_like(e), where=total > 0)[:, None]
        return v

    def _stick_inverse(self, y: np.ndarray, inc: np.ndarray) -> np.ndarray:
        """(N, n_active) unstandardised energy features -> layer energies (N, n_active) MeV, >= 0."""
        e_tot = np.clip(np.exp(y[:, -1]) - self.frac_eps, 0.0, None) * inc
        stick = np.clip((_sigmoid(y[:, :-1]) - self.alpha) / (1.0 - 2.0 * self.alpha), 0.0, 1.0)
        left = np.cumprod(np.concatenate([np.ones((len(y), 1)), 1.0 - stick], axis=1), axis=1)
        share = np.concatenate([stick, np.ones((len(y), 1))], axis=1) * left
        return share * e_tot[:, None]

    def energy_decode(self) -> dict[str, Any]:
        """Constants that turn standardised energy features back into layer energies (JSON-able).

        What :meth:`inverse` does with the energy features, for a model that conditions its shape
        network on the layer energies in MeV (:class:`showerforge.models.factorised.LayerEnergyDecode`).
        """
        return {
            "mean": self.energy_std.mean.tolist(),
            "std": self.energy_std.std.tolist(),
            "y_min": self.y_min.tolist(),
            "y_max": self.y_max.tolist(),
            "alpha": self.alpha,
            "frac_eps": self.frac_eps,
            "cond_mean": float(self.cond_std.mean[0]),
            "cond_std": float(self.cond_std.std[0]),
        }

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (round trip: :meth:`load_state_dict` / :func:`preprocessor_from_state`)."""
        return {
            "kind": self.kind,
            "layer_sizes": list(self.layer_sizes),
            "alpha": self.alpha,
            "frac_eps": self.frac_eps,
            "threshold_mev": self.threshold_mev,
            "threshold_quantile": self.threshold_quantile,
            "threshold_rows": self.threshold_rows,
            "dequantize": self.dequantize,
            "noise_scale": self.noise_scale,
            "seed": self.seed,
            "shape_scale": self.shape_scale,
            "shape_energy_bins": self.shape_energy_bins,
            "energy_feature_min": self.y_min.tolist(),
            "energy_feature_max": self.y_max.tolist(),
            "cond": self.cond_std.state_dict(),
            "energy": self.energy_std.state_dict(),
            "shape": self.shape_std.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; the layer layout must match.

        States written before dequantisation existed load with ``dequantize=False``.
        """
        if state.get("kind") != self.kind:
            raise ValueError(f"preprocessing state of kind {state.get('kind')!r}, expected {self.kind!r}")
        if [int(n) for n in state["layer_sizes"]] != self.layer_sizes:
            raise ValueError("preprocessing state describes a different layer layout")
        self.alpha, self.frac_eps = float(state["alpha"]), float(state["frac_eps"])
        t = state["threshold_mev"]
        self.threshold_mev = None if t is None else float(t)
        self.threshold_quantile = float(state.get("threshold_quantile", self.threshold_quantile))
        self.threshold_rows = int(state.get("threshold_rows", self.threshold_rows))
        self.dequantize = bool(state.get("dequantize", False))
        self.noise_scale = float(state.get("noise_scale", self.noise_scale))
        self.seed = int(state.get("seed", 0))
        self.shape_scale = str(state.get("shape_scale", "layer"))
        self.shape_energy_bins = int(state.get("shape_energy_bins", 0))
        if self.shape_energy_bins:
            self.shape_std = EnergyBinnedStandardize(self.n_voxels, self.shape_energy_bins)
        else:
            self.shape_std = Standardize(self.n_voxels)
        self.y_min = np.asarray(state["energy_feature_min"], dtype=np.float64)
        self.y_max = np.asarray(state["energy_feature_max"], dtype=np.float64)
        self.cond_std.load_state_dict(state["cond"])
        self.energy_std.load_state_dict(state["energy"])
        self.shape_std.load_state_dict(state["shape"])

    def to_json(self) -> str:
        """:meth:`state_dict` as JSON text."""
        return json.dumps(self.state_dict())

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ShowerPreprocessor:
        """Build and restore from :meth:`state_dict` output."""
        obj = cls(state["layer_sizes"], alpha=state["alpha"], frac_eps=state["frac_eps"])
        obj.load_state_dict(state)
        return obj


PREPROCESSORS: dict[str, type[ShowerPreprocessor]] = {ShowerPreprocessor.kind: ShowerPreprocessor}
"""Preprocessor classes by their ``kind`` (the ``kind`` field of a saved state)."""


def preprocessor_from_state(state: dict[str, Any] | str) -> ShowerPreprocessor:
    """Rebuild a fitted preprocessor from its state (dict or JSON text), via :data:`PREPROCESSORS`."""
    st: dict[str, Any] = json.loads(state) if isinstance(state, str) else state
    kind = st.get("kind")
    if kind not in PREPROCESSORS:
        raise ValueError(f"unknown preprocessing kind {kind!r}; known: {sorted(PREPROCESSORS)}")
    return PREPROCESSORS[kind].from_state_dict(st)
