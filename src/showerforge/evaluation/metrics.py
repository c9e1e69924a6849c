"""Histogram and distribution distances with bootstrap uncertainties, shared by showers and jets.

* **Separation power** (triangular discrimination, eq. 15 of arXiv:2009.03796, as used by the
  CaloChallenge 2022): for two histograms ``h``, ``g`` on the same bins, each normalised to unit
  sum over the entries inside the binning,

  .. math:: \\chi^2 = \\frac{1}{N M} \\sum_i \\frac{(M n_i - N m_i)^2}{n_i + m_i},

  0 for identical histograms, 1 for histograms without common bins. Entries outside the bins and
  non-finite entries are not counted (as ``numpy.histogram`` does).
* **chi2 / ndf** of two unweighted histograms with different totals (Gagunashvili,
  arXiv:physics/0605123; ROOT's ``Chi2Test("UU")``): with counts ``n_i``, ``m_i`` and totals
  ``N``, ``M`` over the bins inside the binning,

  .. math:: \\chi^2 = \frac{1}{N M} \\sum_i \frac{(M n_i - N m_i)^2}{n_i + m_i},

  summed over bins with ``n_i + m_i > 0``, ``ndf`` = (those bins) - 1. Under the hypothesis of one
  parent distribution chi2/ndf is about 1 ± sqrt(2 / ndf); the validation bands are < 1, 1-4, >= 4.
* **Wasserstein-1** (earth mover's distance) between the two one-dimensional samples:
  ``W1 = \\int |F(x) - G(x)| dx`` with ``F``, ``G`` the empirical CDFs, in the unit of the
  feature. The value is :func:`scipy.stats.wasserstein_distance`.

Uncertainties come from the bootstrap: both samples are resampled with replacement
(``n_bootstrap`` times, seeded), the distance is recomputed, and the error is the standard
deviation of the replicas. Resampling a sample of ``n`` values with replacement is the same as
giving each value an integer weight drawn from Multinomial(n, 1/n), which lets every replica reuse
the sorted samples and the bin indices (:class:`Resampler`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import wasserstein_distance

from showerforge.errors import UserError

__all__ = [
    "format_measurement",
    "judge_against_floor",
    "Measurement",
    "Resampler",
    "separation_power",
    "separation_power_from_hist",
    "separation_power_counts",
    "chi2_ndf",
    "chi2_ndf_from_hist",
    "wasserstein1",
    "wasserstein1_batches",
    "unit_histogram",
    "bin_index",
]


@dataclass(frozen=True)
class Measurement:
    """A value with its uncertainty; ``None`` where undefined (e.g. an empty histogram).

    Attributes:
        value: the measured value.
        error: its standard uncertainty (bootstrap standard deviation, or std over repeats).
    """

    value: float | None
    error: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        """``{"value": v, "error": e}`` (the form stored in ``metrics.json``)."""
        return {"value": _clean(self.value), "error": _clean(self.error)}

    def __format__(self, spec: str) -> str:
        if self.value is None:
            return "n/a"
        spec = spec or ".4g"
        if self.error is None:
            return format(self.value, spec)
        return f"{format(self.value, spec)} ± {format(self.error, spec)}"


def _clean(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


class Resampler:
    """Bootstrap weights for a reference sample and a candidate sample, drawn once, seeded.

    Row ``b`` of :attr:`ref` holds how often each reference entry appears in bootstrap replica
    ``b`` (Multinomial(n, 1/n) counts, i.e. resampling with replacement); likewise :attr:`cand`.
    Sharing one Resampler between features resamples whole showers, so the replicas of all
    features are consistent.

    Args:
        n_ref, n_cand: sample sizes.
        n_bootstrap: number of replicas (0 or 1: no uncertainty).
        seed: seed of the bootstrap (``numpy.random.default_rng``).
    """

    def __init__(self, n_ref: int, n_cand: int, n_bootstrap: int = 20, seed: int = 0) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB007]))
        self.n_bootstrap = int(n_bootstrap)
        self.ref = self._draw(rng, n_ref)
        self.cand = self._draw(rng, n_cand)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.empty((self.n_bootstrap, n), dtype=np.int32)
        for b in range(self.n_bootstrap):
            out[b] = np.bincount(rng.integers(0, n, n), minlength=n) if n else 0
        return out


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value as ``numpy.histogram`` assigns it; -1 outside the bins or non-finite.

    Bins are ``[e_i, e_{i+1})``, the last one closed.

    Args:
        values: (n,) values.
        edges: (B + 1,) increasing edges.

    Returns:
        (n,) int64 bin indices in ``[0, B)`` or -1.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    edges = np.asarray(edges, dtype=np.float64)
    n_bins = len(edges) - 1
    idx = np.searchsorted(edges, v, side="right") - 1
    idx[v == edges[-1]] = n_bins - 1
    idx[(idx < 0) | (idx >= n_bins) | ~np.isfinite(v)] = -1
    return idx


def unit_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram of the values inside ``edges``, normalised to unit sum (zeros if none inside).

    Returns:
        (B,) float64 fractions.
    """
    idx = bin_index(values, edges)
    counts = np.bincount(idx[idx >= 0], minlength=len(edges) - 1).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def separation_power_from_hist(h: np.ndarray, g: np.ndarray) -> float | None:
    """S of two histograms with the same bins (any normalisation; normalised here to unit sum).

    Returns:
        S in [0, 1], or None when either histogram is empty.
    """
    return _sep(np.asarray(h, dtype=np.float64)[None], np.asarray(g, dtype=np.float64)[None])[0]


def _sep(h: np.ndarray, g: np.ndarray) -> list[float | None]:
    """S row by row of (R, B) count arrays."""
    sh, sg = h.sum(axis=1, keepdims=True), g.sum(axis=1, keepdims=True)
    ok = (sh[:, 0] > 0) & (sg[:, 0] > 0)
    h = h / np.where(sh > 0, sh, 1.0)
    g = g / np.where(sg > 0, sg, 1.0)
    num, den = (h - g) ** 2, h + g
    s = 0.5 * np.sum(np.divide(num, den, out=np.zeros_like(num), where=den > 0), axis=1)
    return [float(v) if k else None for v, k in zip(s, ok)]


def _chi2(h: np.ndarray, g: np.ndarray) -> list[float | None]:
    """chi2 / ndf row by row of (R, B) count arrays (None with fewer than 2 filled bins)."""
    n, m = h.sum(axis=1, keepdims=True), g.sum(axis=1, keepdims=True)
    den = h + g
    num = (m * h - n * g) ** 2
    terms = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    chi2 = terms.sum(axis=1) / np.maximum(n[:, 0] * m[:, 0], 1e-300)
    ndf = (den > 0).sum(axis=1) - 1
    ok = (n[:, 0] > 0) & (m[:, 0] > 0) & (ndf >= 1)
    return [float(c / d) if k else None for c, d, k in zip(chi2, ndf, ok)]


def chi2_ndf_from_hist(h: np.ndarray, g: np.ndarray) -> float | None:
    """chi2 / ndf of two histograms of raw counts on the same bins (see module docstring)."""
    return _chi2(np.asarray(h, dtype=np.float64)[None], np.asarray(g, dtype=np.float64)[None])[0]


def _measure(central: float | None, replicas: list[float | None]) -> Measurement:
    reps = [r for r in replicas if r is not None]
    if central is None:
        return Measurement(None, None)
    err = float(np.std(reps, ddof=1)) if len(reps) >= 2 else None
    return Measurement(central, err)


def _weights_hist(idx: np.ndarray, n_bins: int, weights: np.ndarray) -> np.ndarray:
    """(R, B) weighted counts for bin indices idx (n,) and weights (R, n)."""
    keep = idx >= 0
    onehot_idx = idx[keep]
    w = weights[:, keep].astype(np.float64)
    out = np.zeros((w.shape[0], n_bins))
    for r in range(w.shape[0]):
        out[r] = np.bincount(onehot_idx, weights=w[r], minlength=n_bins)
    return out


def _binned(
    stat: Callable[[np.ndarray, np.ndarray], list[float | None]],
    reference: np.ndarray,
    candidate: np.ndarray,
    edges: np.ndarray,
    n_bootstrap: int,
    seed: int,
    resampler: Resampler | None,
) -> Measurement:
    """A histogram statistic (row-wise on (R, B) counts) of two samples, with its bootstrap error."""
    ref, cand = np.asarray(reference).reshape(-1), np.asarray(candidate).reshape(-1)
    rs = resampler or Resampler(len(ref), len(cand), n_bootstrap, seed)
    n_bins = len(edges) - 1
    ir, ic = bin_index(ref, edges), bin_index(cand, edges)
    h = np.bincount(ir[ir >= 0], minlength=n_bins)[None].astype(np.float64)
    g = np.bincount(ic[ic >= 0], minlength=n_bins)[None].astype(np.float64)
    central = stat(h, g)[0]
    if rs.n_bootstrap < 2 or central is None:
        return Measurement(central, None)
    return _measure(central, stat(_weights_hist(ir, n_bins, rs.ref), _weights_hist(ic, n_bins, rs.cand)))


def separation_power(
    reference: np.ndarray,
    candidate: np.ndarray,
    edges: np.ndarray,
    *,
    n_bootstrap: int = 20,
    seed: int = 0,
    resampler: Resampler | None = None,
) -> Measurement:
    """Separation power of two samples histogrammed on ``edges``, with a bootstrap error.

    Args:
        reference: (n,) reference values.
        candidate: (m,) candidate values.
        edges: (B + 1,) bin edges.
        n_bootstrap: bootstrap replicas (ignored when ``resampler`` is given).
        seed: bootstrap seed (ignored when ``resampler`` is given).
        resampler: shared bootstrap weights for samples of sizes (n, m).

    Returns:
        S ± bootstrap std; value None when a histogram has no entry inside the bins.
    """
    return _binned(_sep, reference, candidate, edges, n_bootstrap, seed, resampler)


def chi2_ndf(
    reference: np.ndarray,
    candidate: np.ndarray,
    edges: np.ndarray,
    *,
    n_bootstrap: int = 20,
    seed: int = 0,
    resampler: Resampler | None = None,
) -> Measurement:
    """chi2 / ndf of two samples histogrammed on ``edges`` (raw counts), with a bootstrap error.

    Args:
        reference, candidate, edges, n_bootstrap, seed, resampler: as in :func:`separation_power`.

    Returns:
        chi2 / ndf ± bootstrap std; value None with fewer than two filled bins.
    """
    return _binned(_chi2, reference, candidate, edges, n_bootstrap, seed, resampler)


def separation_power_counts(
    reference_counts: np.ndarray,
    candidate_counts: np.ndarray,
    *,
    n_bootstrap: int = 20,
    seed: int = 0,
    resampler: Resampler | None = None,
) -> Measurement:
    """Separation power of histograms given as per-shower counts (e.g. voxel energies).

    Args:
        reference_counts: (n, B) counts of each reference shower; the histogram is the column sum.
        candidate_counts: (m, B) counts of each candidate shower.
        n_bootstrap, seed, resampler: as in :func:`separation_power` (showers are resampled).

    Returns:
        S ± bootstrap std.
    """
    rc = np.asarray(reference_counts, dtype=np.float64)
    cc = np.asarray(candidate_counts, dtype=np.float64)
    rs = resampler or Resampler(len(rc), len(cc), n_bootstrap, seed)
    central = _sep(rc.sum(axis=0)[None], cc.sum(axis=0)[None])[0]
    if rs.n_bootstrap < 2 or central is None:
        return Measurement(central, None)
    return _measure(central, _sep(rs.ref @ rc, rs.cand @ cc))


def _w1_replicas(u: np.ndarray, v: np.ndarray, wu: np.ndarray, wv: np.ndarray) -> np.ndarray:
    """W1 between weighted samples u (n,), v (m,) for each row of weights wu (R, n), wv (R, m).

    Both CDFs are step functions on the pooled sorted values; W1 = sum |F - G| * gap.
    """
    pooled = np.concatenate([u, v])
    order = np.argsort(pooled, kind="stable")
    gaps = np.diff(pooled[order])
    out = np.empty(wu.shape[0])
    zeros_u, zeros_v = np.zeros(len(v)), np.zeros(len(u))
    for r in range(wu.shape[0]):
        a = np.concatenate([wu[r].astype(np.float64), zeros_u])[order]
        b = np.concatenate([zeros_v, wv[r].astype(np.float64)])[order]
        cdf_a = np.cumsum(a)[:-1] / a.sum()
        cdf_b = np.cumsum(b)[:-1] / b.sum()
        out[r] = float(np.sum(np.abs(cdf_a - cdf_b) * gaps))
    return out


def wasserstein1(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    n_bootstrap: int = 20,
    seed: int = 0,
    resampler: Resampler | None = None,
) -> Measurement:
    """Wasserstein-1 distance between two 1-D samples, with a bootstrap error.

    Non-finite values are dropped.

    Args:
        reference: (n,) reference values.
        candidate: (m,) candidate values.
        n_bootstrap, seed, resampler: as in :func:`separation_power`.

    Returns:
        W1 (unit of the values) ± bootstrap std; None when a sample has no finite value.
    """
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    cand = np.asarray(candidate, dtype=np.float64).reshape(-1)
    rs = resampler or Resampler(len(ref), len(cand), n_bootstrap, seed)
    mr, mc = np.isfinite(ref), np.isfinite(cand)
    if not mr.any() or not mc.any():
        return Measurement(None, None)
    u, v = ref[mr], cand[mc]
    central = float(wasserstein_distance(u, v))
    if rs.n_bootstrap < 2:
        return Measurement(central, None)
    wu, wv = rs.ref[:, mr], rs.cand[:, mc]
    good = (wu.sum(axis=1) > 0) & (wv.sum(axis=1) > 0)
    if good.sum() < 2:
        return Measurement(central, None)
    reps = _w1_replicas(u, v, wu[good], wv[good])
    return Measurement(central, float(np.std(reps, ddof=1)))


def wasserstein1_batches(
    x: Any,
    y: Any,
    draw: Callable[[Any, np.ndarray], np.ndarray],
    rng: np.random.Generator,
    *,
    num_eval_samples: int,
    num_batches: int,
) -> np.ndarray:
    """W1 per feature on ``num_batches`` random subsamples of each sample (jetnet's convention).

    The two W1 conventions of this module follow the two communities: :func:`wasserstein1` is the
    full-sample distance with a bootstrap error (CaloChallenge); this one draws
    ``num_eval_samples`` rows of each sample with replacement ``num_batches`` times and computes
    the distance on each draw, and the JetNet papers quote the mean ± std over the draws.

    Args:
        x, y: the samples (any indexable objects ``draw`` understands), ``len()`` rows each.
        draw: ``draw(sample, row_indices) -> (k, n_features)`` values of the chosen rows.
        rng: numpy random generator (seeded by the caller).
        num_eval_samples: rows drawn per batch.
        num_batches: draws.

    Returns:
        (num_batches, n_features) W1 values; ``inf`` for a batch in which a draw is empty.
    """
    if num_batches < 1 or num_eval_samples < 1:
        raise UserError("num_batches and num_eval_samples must be >= 1")
    rows = []
    for _ in range(num_batches):
        a = draw(x, rng.choice(len(x), size=num_eval_samples))
        b = draw(y, rng.choice(len(y), size=num_eval_samples))
        if len(a) == 0 or len(b) == 0:
            rows.append([np.inf] * a.shape[1])
            continue
        rows.append([wasserstein_distance(a[:, k], b[:, k]) for k in range(a.shape[1])])
    return np.asarray(rows, dtype=np.float64)


def format_measurement(m: dict[str, Any] | None) -> str:
    """``value ± error`` of a JSON measurement (``{"value", "error"}``), ``n/a`` when undefined."""
    if not m or m.get("value") is None:
        return "n/a"
    v, e = m["value"], m.get("error")
    return f"{v:.4g}" if e is None else f"{v:.4g} ± {e:.2g}"


def judge_against_floor(cand: dict[str, Any] | None, floor: dict[str, Any] | None) -> tuple[str, str]:
    """(word, css class) from the distance of a candidate value to its floor in combined sigma."""
    if not cand or not floor or cand.get("value") is None or floor.get("value") is None:
        return "n/a", ""
    err = math.hypot(cand.get("error") or 0.0, floor.get("error") or 0.0)
    if err <= 0:
        return ("as the floor", "ok") if cand["value"] == floor["value"] else ("no error to judge", "")
    z = (cand["value"] - floor["value"]) / err
    if z <= 2:
        return f"as the floor ({z:+.1f} sigma)", "ok"
    if z <= 5:
        return f"distinguishable ({z:+.1f} sigma)", "warn"
    return f"clearly different ({z:+.1f} sigma)", "bad"
