"""Histogram binnings of the CaloChallenge 2022 evaluation (``code/evaluate_plotting_helper.py``).

Edges (``linspace(a, b, k)`` / ``logspace`` give ``k`` edges, i.e. ``k - 1`` bins):

========================  ===================================================================
feature                   edges
========================  ===================================================================
``etot_over_einc``        ``linspace(0.5, 1.5, 101)`` (100 bins)
``layer_energy[l]``       ``logspace(log10 t, log10 max_ref(E_l), 40)`` MeV (39 bins)
``voxel_energy``          ``logspace(log10 t, log10 max_ref(voxel), 50)`` MeV (49 bins)
``center_x/y[l]``         ds2/3: ``linspace(-30, 30, 101)`` mm; ds1: +-500 mm in layers 12, 13,
                          +-100 mm elsewhere
``width_x/y[l]``          ds2/3: ``linspace(0, 30, 101)`` mm; ds1: (0, 400) in layers 12, 13,
                          (0, 100) elsewhere
``center_r[l]``           ds2/3: ``linspace(0, 42, 101)`` mm; ds1: (0, 1500) in layers 12-14,
                          (0, 500) elsewhere
``width_r[l]``            ds2/3: ``linspace(0, 20, 101)`` mm; ds1: as ``center_r``
``sparsity[l]``           ``linspace(0, 1, 21)`` (20 bins)
========================  ===================================================================

``t`` is the voxel threshold (MeV); when it is 0 the smallest positive reference value is used
instead. ``max_ref`` is taken over the reference sample. For a readout that is not one of the
challenge's, the dataset-2 ranges in mm are scaled by ``R / 41.85 mm`` with ``R`` the outer radius
of the layer (41.85 mm is the outer radius of datasets 2 and 3).
"""

from __future__ import annotations

import math

import numpy as np

from showerforge.geometry import Geometry

__all__ = ["feature_edges", "log_edges", "DS2_OUTER_RADIUS_MM"]

DS2_OUTER_RADIUS_MM = 41.85
# dataset 2/3 ranges in mm: (low, high)
_DS23 = {"center": (-30.0, 30.0), "width": (0.0, 30.0), "center_r": (0.0, 42.0), "width_r": (0.0, 20.0)}


def log_edges(low: float, high: float, n_edges: int) -> np.ndarray | None:
    """``n_edges`` logarithmically spaced edges from ``low`` to ``high`` (exact end points).

    Returns:
        (n_edges,) float64, or None when the range is empty or not positive.
    """
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high <= low:
        return None
    edges = np.logspace(math.log10(low), math.log10(high), n_edges)
    edges[0], edges[-1] = low, high
    return edges


def _linear_range(name: str, layer: int, geometry: Geometry, dataset: str | None) -> tuple[float, float]:
    family = "center" if name in ("center_x", "center_y") else "width" if name in ("width_x", "width_y") else name
    if dataset in ("2", "3"):
        return _DS23[family]
    if dataset is not None and dataset.startswith("1"):
        if family == "center":
            return (-500.0, 500.0) if layer in (12, 13) else (-100.0, 100.0)
        if family == "width":
            return (0.0, 400.0) if layer in (12, 13) else (0.0, 100.0)
        return (0.0, 1500.0) if layer in (12, 13, 14) else (0.0, 500.0)
    scale = geometry.readout[layer].r_edges_mm[-1] / DS2_OUTER_RADIUS_MM
    lo, hi = _DS23[family]
    return (lo * scale, hi * scale)


def feature_edges(
    name: str,
    geometry: Geometry,
    dataset: str | None,
    *,
    layer: int | None = None,
    threshold_mev: float = 0.0,
    reference_max: float = float("nan"),
    reference_min_positive: float = float("nan"),
) -> np.ndarray | None:
    """Bin edges of a feature histogram (see module docstring).

    Args:
        name: ``etot_over_einc``, ``voxel_energy`` or a per-layer feature name.
        geometry: the readout.
        dataset: :func:`showerforge.evaluation.showers.features.challenge_dataset` of the geometry.
        layer: readout layer of a per-layer feature.
        threshold_mev: voxel threshold, MeV (lower edge of the energy histograms).
        reference_max: largest reference value (energy histograms), MeV.
        reference_min_positive: smallest positive reference value, MeV (lower edge when the
            threshold is 0).

    Returns:
        increasing edges, or None when no histogram can be made (e.g. an empty reference layer).
    """
    if name == "etot_over_einc":
        return np.linspace(0.5, 1.5, 101)
    if name == "sparsity":
        return np.linspace(0.0, 1.0, 21)
    if name in ("layer_energy", "voxel_energy"):
        low = threshold_mev if threshold_mev > 0 else reference_min_positive
        return log_edges(low, reference_max, 40 if name == "layer_energy" else 50)
    if layer is None:
        raise ValueError(f"feature {name!r} needs a layer")
    lo, hi = _linear_range(name, layer, geometry, dataset)
    return np.linspace(lo, hi, 101)
