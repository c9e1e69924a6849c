"""Histograms and profiles of one observable, and their comparison (chi2/ndf, bands, KS p-value).

A :class:`Hist1D` holds the sums of weights and of squared weights per bin (unit weights: counts),
so that the statistical error of each bin is ``sqrt(sumw2)``. Values outside the edges are counted
in the first / last bin (the reference's binning covers its 0.1-99.9 % quantiles, see
:func:`reference_edges`), so no event is lost from the normalisation.

A *profile* (``kind="profile"``) holds per-bin means (``values``) with their standard errors
(``errors``): e.g. the mean energy per calorimeter layer. Histograms are compared as shapes (both
normalised to unit area); profiles are compared as they are.

Comparison of two histograms ``a`` and ``b`` (reference):

    chi2 = sum_i (a_i - b_i)^2 / (s_a,i^2 + s_b,i^2)

over the bins where the denominator is > 0, with ``a_i``, ``s_a,i`` the bin content and error
after normalisation; ``ndf`` is the number of those bins, minus one for histograms (the
normalisation constraint). The bands are those of mcplots: chi2/ndf < 1 agrees within the
statistical errors, 1-4 marginal, >= 4 disagrees.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from showerforge.errors import UserError

__all__ = ["BANDS", "Comparison", "Hist1D", "band", "compare", "fill", "ks_pvalue", "profile", "reference_edges"]

#: mcplots' chi2/ndf bands: (upper bound, name); the last band is open
BANDS = ((1.0, "good"), (4.0, "marginal"), (math.inf, "bad"))


def band(chi2_ndf: float | None) -> str:
    """``good`` (chi2/ndf < 1), ``marginal`` (1-4), ``bad`` (>= 4), ``n/a`` (no comparison)."""
    if chi2_ndf is None or not math.isfinite(chi2_ndf):
        return "n/a"
    for upper, name in BANDS:
        if chi2_ndf < upper:
            return name
    return "bad"


@dataclass
class Hist1D:
    """One binned observable.

    Attributes:
        name: identifier, unique within a validation (``etot_over_einc``, ``jet_mass``).
        edges: bin edges, increasing, shape (n + 1,).
        values: per bin: sum of weights (histogram) or mean (profile).
        errors: per bin: sqrt(sum of squared weights) (histogram) or standard error (profile).
        kind: ``"histogram"`` or ``"profile"``.
        entries: number of events filled.
        title: human title (``E_tot / E_inc``).
        xlabel: axis label with unit (``E_tot / E_inc``, ``m_rel``, ``layer``).
        analysis: name of the analysis that booked it.
        logx: edges are logarithmic (plots use a log axis).
    """

    name: str
    edges: np.ndarray
    values: np.ndarray
    errors: np.ndarray
    kind: str = "histogram"
    entries: int = 0
    title: str = ""
    xlabel: str = ""
    analysis: str = ""
    logx: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64).reshape(-1)
        self.values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        self.errors = np.asarray(self.errors, dtype=np.float64).reshape(-1)
        if self.kind not in ("histogram", "profile"):
            raise ValueError(f"histogram {self.name!r}: kind must be 'histogram' or 'profile', got {self.kind!r}")
        n = self.edges.size - 1
        if n < 1 or self.values.shape != (n,) or self.errors.shape != (n,):
            raise ValueError(
                f"histogram {self.name!r}: {self.edges.size} edges need {n} values and errors, "
                f"got {self.values.size} and {self.errors.size}"
            )
        if not np.all(np.diff(self.edges) > 0):
            raise ValueError(f"histogram {self.name!r}: edges must increase strictly")
        if np.any(self.errors < 0) or not np.all(np.isfinite(self.errors)):
            raise ValueError(f"histogram {self.name!r}: errors must be finite and >= 0")

    @property
    def n_bins(self) -> int:
        return int(self.values.size)

    def normalised(self) -> tuple[np.ndarray, np.ndarray]:
        """(content, error) per bin: unit area for a histogram (fractions of the total weight),
        unchanged for a profile."""
        if self.kind == "profile":
            return self.values.copy(), self.errors.copy()
        total = float(self.values.sum())
        if total <= 0:
            return np.zeros_like(self.values), np.zeros_like(self.errors)
        return self.values / total, self.errors / total

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "values": self.values.tolist(),
            "errors": self.errors.tolist(),
            "entries": int(self.entries),
            "title": self.title,
            "xlabel": self.xlabel,
            "analysis": self.analysis,
            "logx": bool(self.logx),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hist1D:
        return cls(
            name=str(d["name"]),
            edges=np.asarray(d["edges"], dtype=np.float64),
            values=np.asarray(d["values"], dtype=np.float64),
            errors=np.asarray(d["errors"], dtype=np.float64),
            kind=str(d.get("kind", "histogram")),
            entries=int(d.get("entries", 0)),
            title=str(d.get("title", "")),
            xlabel=str(d.get("xlabel", "")),
            analysis=str(d.get("analysis", "")),
            logx=bool(d.get("logx", False)),
        )


def reference_edges(values: np.ndarray, n_bins: int = 30, *, log: bool = False, integer: bool = False) -> np.ndarray:
    """Edges from the reference sample: ``n_bins`` equal bins over its 0.1-99.9 % quantiles
    (logarithmic bins when ``log``; unit bins centred on integers when ``integer``)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if log:
        v = v[v > 0]
    if v.size == 0:
        return np.linspace(0.0, 1.0, n_bins + 1)
    lo, hi = np.quantile(v, [0.001, 0.999])
    if integer:
        lo, hi = math.floor(lo), math.ceil(hi)
        step = max(1, math.ceil((hi - lo + 1) / n_bins))
        return np.arange(lo - 0.5, hi + step + 0.5 - 1e-9, step, dtype=np.float64)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        return np.logspace(lo, hi, n_bins + 1)
    if hi - lo < 1e-12 * max(1.0, abs(lo)):
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n_bins + 1)


def fill(
    name: str,
    values: np.ndarray,
    edges: np.ndarray,
    weights: np.ndarray | None = None,
    **meta: Any,
) -> Hist1D:
    """Fill a histogram (values outside the edges go to the first / last bin; NaN are dropped)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    keep = np.isfinite(v) & np.isfinite(w)
    v, w = v[keep], w[keep]
    e = np.asarray(edges, dtype=np.float64)
    idx = np.clip(np.searchsorted(e, v, side="right") - 1, 0, e.size - 2)
    sumw = np.bincount(idx, weights=w, minlength=e.size - 1)
    sumw2 = np.bincount(idx, weights=w * w, minlength=e.size - 1)
    return Hist1D(name=name, edges=e, values=sumw, errors=np.sqrt(sumw2), entries=int(v.size), **meta)


def profile(name: str, samples: np.ndarray, edges: np.ndarray | None = None, **meta: Any) -> Hist1D:
    """A profile of the per-event columns of ``samples`` (N, n_bins): the mean of each column with
    its standard error (bin i spans ``edges[i]..edges[i+1]``, default ``i - 0.5 .. i + 0.5``)."""
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1:
        raise ValueError(f"profile {name!r}: need a (N, bins) array with N >= 1, got shape {s.shape}")
    n = s.shape[0]
    mean = s.mean(axis=0)
    err = s.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    e = np.arange(s.shape[1] + 1, dtype=np.float64) - 0.5 if edges is None else np.asarray(edges, np.float64)
    return Hist1D(name=name, edges=e, values=mean, errors=err, kind="profile", entries=n, **meta)


def _check_compatible(a: Hist1D, b: Hist1D) -> None:
    if a.kind != b.kind:
        raise UserError(f"histogram {a.name!r}: cannot compare a {a.kind} with a {b.kind}")
    if a.edges.shape != b.edges.shape or not np.allclose(a.edges, b.edges, rtol=1e-9, atol=0.0):
        raise UserError(
            f"histogram {a.name!r}: the two histograms have different binnings "
            f"({a.n_bins} bins {a.edges[0]:g}..{a.edges[-1]:g} vs {b.n_bins} bins {b.edges[0]:g}..{b.edges[-1]:g}); "
            "compare histograms booked from the same reference"
        )


@dataclass(frozen=True)
class Comparison:
    """Result of comparing a histogram with a reference histogram."""

    chi2: float
    ndf: int
    max_pull: float
    ks_p: float | None = None

    @property
    def chi2_ndf(self) -> float | None:
        return self.chi2 / self.ndf if self.ndf > 0 else None

    @property
    def band(self) -> str:
        return band(self.chi2_ndf)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chi2": self.chi2,
            "ndf": self.ndf,
            "chi2_ndf": self.chi2_ndf,
            "max_pull": self.max_pull,
            "ks_p": self.ks_p,
            "band": self.band,
        }


def compare(a: Hist1D, b: Hist1D) -> Comparison:
    """chi2 (both errors), ndf and the largest pull |a_i - b_i| / sigma_i of ``a`` against ``b``."""
    _check_compatible(a, b)
    ya, ea = a.normalised()
    yb, eb = b.normalised()
    var = ea * ea + eb * eb
    used = var > 0
    pulls = np.zeros_like(ya)
    pulls[used] = (ya[used] - yb[used]) / np.sqrt(var[used])
    chi2 = float(np.sum(pulls[used] ** 2))
    ndf = int(used.sum()) - (1 if a.kind == "histogram" else 0)
    return Comparison(chi2=chi2, ndf=max(ndf, 0), max_pull=float(np.max(np.abs(pulls))) if used.any() else 0.0)


def ks_pvalue(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sample Kolmogorov-Smirnov p-value of the unbinned values (None if a sample is empty)."""
    from scipy.stats import ks_2samp

    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "exact calculation unsuccessful": asymptotic p
        return float(ks_2samp(x, y).pvalue)
