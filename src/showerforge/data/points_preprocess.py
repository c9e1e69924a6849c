"""Preprocessing and calibrations of point-cloud showers for the ``cfm-points`` model.

Three encodings, each an exact inverse of its decoding (apart from the rounding of counts):

* **condition**: ``log(E_inc / 1 GeV)``, standardised;
* **summaries** (per shower, ``2 L + 4`` numbers): ``log(E_vis / E_inc)`` and ``log N`` (the
  totals: visible energy and points, modelled directly because the physics depends on them most),
  ``log(f_l + 1e-4)`` for each layer's share of the energy and of the points, and the
  energy-weighted centre of gravity in x and y (mm); standardised per column (a column without
  spread keeps scale 1);
* **points**: ``asinh(x / s)``, ``asinh(y / s)`` with ``s`` = :data:`XY_SCALE_MM` (5 mm; fine
  near the axis, compressed in the halo; a state saved with another ``s`` keeps it), ``z`` = layer index + a uniform offset in [0, 1) (dequantisation: a continuous depth the
  flow can learn; the offset is drawn once with a seed), ``log(E / 1 MeV)``; standardised. Where
  the training geometry scores a grid of fine squares (``subcells``; Geant4's points sit at their
  centres), ``x`` and ``y`` are dequantised the same way before the ``asinh``: a uniform offset
  within the point's fine square, so the flow learns a density that is constant over each fine
  square instead of a comb of point masses (which it can only blur, across cell edges too). The
  fine squares never straddle a cell edge, so generated points, continuous, fall into the cells
  exactly as the dequantised Geant4 points do. A preprocessor fitted before this (no ``grid_mm``
  in its state) does not dequantise.

:func:`calibrate` turns decoded points into a shower that obeys the drawn summaries *exactly*, as
CaloClouds II does after sampling: points sorted by depth fill the layers with the drawn number
of points per layer; in each layer the energies are rescaled to the drawn layer energy; x and y
are shifted so the energy-weighted centre of gravity is the drawn one. On a square-cell readout,
points drawn beyond the calorimeter's face are dropped first (Geant4 records nothing there).

**Core split** (optional, ``core=True``; for a geometry with fine squares): in each layer the fine
square on the axis (where the beam enters) holds at most one Geant4 point, and it carries a fifth
of a photon shower's energy in one per cent of its points. A point flow with pooled interactions
only cannot draw "exactly one point, exactly there" and blurs it. With the split, the shower flow
also draws each layer's *core fraction* (``log(f_core + 1e-4)`` of the layer's energy, ``L`` more
summaries, after the centre of gravity), the point flow learns the other points only (counts per
layer exclude the core), and :func:`calibrate` puts one point of the drawn core energy at the
centre of the axis square in each layer; the centre-of-gravity shift moves the other points only.

**Occupancy calibration** (CaloClouds II's point-count correction): Geant4's points sit on a
sub-cell grid and a generator's points, spread a little wider, hit more cells with the same number
of points. Per layer, :func:`occupancy_table` measures the mean number of cells above threshold
against the number of points (in quantile bins of the points), once on the training showers (the
target) and once on the model's own uncalibrated showers; :func:`fit_occupancy` gives, at the
target's bins, the ratio ``n' / n`` of points to generate so that the model's mean cell count
equals Geant4's at ``n`` points, and :meth:`PointsPreprocessor.calibrated_counts` applies it
(log-linear interpolation in ``log n``, constant beyond the end bins). The model spreads its points
a little differently when asked for ``n'`` instead of ``n``, so :func:`refine_occupancy` measures
the calibrated showers again and corrects the ratios (three rounds by default, the other
calibrations refined in the same rounds; ILD photons, cells per shower 5.4 % over Geant4's after
the first fit, 1.7 % and 0.7 % after one and two refinements). The drawn energy per layer and
centre of gravity are then imposed on the ``n'`` points as before.

**Radial energy calibration**: a point flow that draws the right points in the right places can
still share a layer's energy wrongly between core and halo (ILD photons: the central cell holds
54–55 % of the energy where Geant4 puts 59 %, the most visible difference to a classifier). Per
layer, radial bin (:data:`RADIAL_EDGES_MM` around the axis) and incident-energy bin
(:data:`RADIAL_ENERGY_BINS`, quantiles of the training energies; :func:`energy_edges`), :func:`radial_profile` measures the
share of the layer's energy, once on the training showers (the target; Geant4's points spread
uniformly over their fine squares, as the model learns them) and once on the model's own showers;
:func:`fit_radial` stores the ratios as weights (clipped to [1/4, 4]) and :func:`calibrate`
multiplies each point's energy by its bin's weight before the layer energies are imposed, so the
drawn energy per layer stays exact and only its radial sharing changes. The points stay where the
model put them (the number of cells hit changes only through the threshold).
:func:`refine_radial` corrects the weights on calibrated showers, in the same rounds as the
occupancy. Under the core split the profiles are of the non-core points (the core energy is the
shower flow's).

**Centre-of-gravity calibration**: the drawn centre of gravity is imposed on the points, but a
detector sees the cells' centres: how much of a shift shows depends on how the shower shares its
energy between cells (a 1-step ILD student: the cells' centre of gravity spreads 0.17 mm where its
points' spreads 0.22 mm and Geant4's cells' 0.21 mm). The sampler maps the drawn x and y (after
they have conditioned the point flow) to ``cog * cog_scale + cog_shift`` (per axis; factors within
0.5 and 2, shifts within 1 mm), fitted and refined with the other calibrations to give the mean and
spread of the training showers' cells' centre of gravity (``cog_target``, mm).

**Cell-energy calibration**: with the right points per layer, energies per layer and radial
sharing, the energies of single cells can still be a few per cent off (ILD photons: the median
cell 0.577 MeV where Geant4's is 0.546, W1 x 100 of the cell spectrum 38x its Geant4-vs-Geant4
floor). Per incident-energy bin (the radial calibration's), :func:`cell_quantiles` measures the
quantiles of ``log10(E_cell / MeV)`` of every cell with energy (below the readout threshold too:
a map fitted above it alone moves cells across it and changes the number of hits), dense among
the highest cells (:func:`cell_levels`), once on the training showers (the target) and once on
the model's own showers;
:func:`fit_cell_energy` stores the map between them as a shift of ``log10 E`` on a uniform grid
(:data:`CELL_GRID_LOG10`; linear in between, constant beyond the quantiles, within
:data:`CELL_MAX_LOG10_SHIFT`), and :func:`calibrate`, last, multiplies the energy of every point of
a cell by the cell's factor ``10**shift(log10 E_cell)`` (the cell's energy becomes the target's
at the same quantile), then rescales each layer to its drawn energy again and shifts the points
off the axis so the centre of gravity stays the drawn one. :func:`refine_cell_energy` composes a
correction measured on calibrated showers, in the same rounds as the other calibrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from showerforge.data.points import PointClouds, cell_keys, cell_tables, points_to_cells
from showerforge.geometry import Geometry

__all__ = [
    "PointsPreprocessor",
    "Summaries",
    "shower_summaries",
    "calibrate",
    "face_half_widths",
    "fine_grid_mm",
    "core_mask",
    "without_core",
    "occupancy_table",
    "fit_occupancy",
    "apply_occupancy",
    "refine_occupancy",
    "radial_profile",
    "fit_radial",
    "refine_radial",
    "radial_weights",
    "radial_log_weights",
    "energy_bin",
    "energy_edges",
    "cell_quantiles",
    "cell_log_energies",
    "fit_cell_energy",
    "refine_cell_energy",
    "cell_energy_factors",
    "CELL_GRID_LOG10",
    "RADIAL_EDGES_MM",
    "RADIAL_ENERGY_BINS",
    "XY_SCALE_MM",
    "E_SCALE_MEV",
]

XY_SCALE_MM = 5.0
"""Scale ``s`` of the transverse encoding ``asinh(x / s)`` of a new fit: linear within a cell of the
axis (ILD ECal: 5.09 mm), logarithmic in the halo. A saved state keeps its own (1 mm, tried on ILD
photons, drew no sharper core: docs/benchmarks.md)."""
LEGACY_XY_SCALE_MM = 5.0
E_SCALE_MEV = 1.0
FRACTION_FLOOR = 1e-4
CORE_MIN_FRACTION = 1e-5
OCCUPANCY_BINS = 8
OCCUPANCY_MIN_PER_BIN = 25
OCCUPANCY_MAX_LOG_RATIO = float(np.log(4.0))
RADIAL_EDGES_MM = (0.0, 0.75, 1.5, 2.5, 3.5, 5.0, 6.5, 8.0, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0, 40.0, 60.0)
"""Lower edges (mm from the axis) of the radial bins of the radial energy calibration; the last bin is
open. Fine where a photon shower's core is (ILD ECal: 5.09 mm cells of 1.02 mm fine squares)."""
RADIAL_MAX_LOG_WEIGHT = float(np.log(4.0))
RADIAL_ENERGY_BINS = 4
"""Incident-energy bins of the radial energy calibration (equal numbers of training showers)."""
CELL_GRID_LOG10 = (-5.0, 5.0, 321)
"""Grid of the cell-energy calibration's shifts: ``log10(E_cell / MeV)`` from, to, nodes (1/32 decade)."""
CELL_LEVELS = 512
"""Quantile levels of the cell-energy calibration (spaced by :func:`cell_levels`)."""
CELL_TARGET_SHOWERS = 20000
"""Training showers whose cell spectrum is the target (the other calibrations' targets take 5,000)."""
CELL_MAX_LOG10_SHIFT = float(np.log10(4.0))
"""Limit of the cell-energy calibration's shift of ``log10 E_cell`` (a factor of 4, as the radial weights)."""


def _fractions(log_frac: np.ndarray) -> np.ndarray:
    """Fractions from ``log(f + FRACTION_FLOOR)``: clipped at 0 and normalised; an all-zero row keeps its largest entry."""
    f = np.clip(np.exp(np.clip(log_frac, -30.0, 1.0)) - FRACTION_FLOOR, 0.0, None)
    empty = f.sum(axis=1) <= 0
    if empty.any():
        f[empty, np.argmax(log_frac[empty], axis=1)] = 1.0
    return f / f.sum(axis=1, keepdims=True)


def _renormalise(f: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows of ``f`` normalised to 1; a row that lost everything takes ``fallback``'s normalised row."""
    total = f.sum(axis=1, keepdims=True)
    fb = fallback / np.maximum(fallback.sum(axis=1, keepdims=True), 1e-300)
    return np.where(total > 0, f / np.where(total > 0, total, 1.0), fb)


def _largest_remainders(frac: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Integer counts (N, L) >= 0 with row sums ``total`` and counts near ``frac * total`` (Hamilton's method)."""
    ideal = frac * total[:, None]
    counts = np.floor(ideal).astype(np.int64)
    short = total - counts.sum(axis=1)
    order = np.argsort(-(ideal - counts), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(frac.shape[1])[None, :].repeat(len(frac), 0), axis=1)
    return counts + (rank < short[:, None]).astype(np.int64)


@dataclass
class Summaries:
    """Per-shower summaries in physical units: ``counts`` (N, L) points per layer (without the core
    points under the core split), ``energies`` (N, L) MeV per layer, ``cog`` (N, 2) energy-weighted
    x, y in mm, ``core`` (see below)."""

    counts: np.ndarray
    energies: np.ndarray
    cog: np.ndarray
    core: np.ndarray | None = None
    """(N, L) MeV of each layer's core point (part of ``energies``); ``None`` without the core split."""

    @property
    def n_points(self) -> np.ndarray:
        """Points per shower, (N,) int64."""
        return self.counts.sum(axis=1)


def core_mask(points: np.ndarray, grid_mm: np.ndarray) -> np.ndarray:
    """(M,) bool: the points in their layer's fine square on the axis (``|x|, |y| < grid / 2``)."""
    p = np.asarray(points)
    half = 0.5 * np.asarray(grid_mm, np.float64)[np.clip(np.rint(p[:, 2]).astype(np.int64), 0, len(grid_mm) - 1)]
    return (np.abs(p[:, 0]) < half) & (np.abs(p[:, 1]) < half)


def without_core(clouds: PointClouds, grid_mm: np.ndarray) -> PointClouds:
    """``clouds`` less the points of :func:`core_mask` (same showers, same order)."""
    keep = ~core_mask(clouds.points, grid_mm)
    sizes = np.bincount(clouds.event_index()[keep], minlength=len(clouds))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(clouds.offsets.dtype)
    return PointClouds(clouds.points[keep], offsets, clouds.incident_mev, clouds.geometry)


def shower_summaries(clouds: PointClouds, n_layers: int, core_grid_mm: np.ndarray | None = None) -> Summaries:
    """Points per layer, energy per layer and centre of gravity of every shower of ``clouds``; with
    ``core_grid_mm`` (the fine squares' widths per layer) the core split: counts without the core
    points, and each layer's core energy."""
    n = len(clouds)
    ev = clouds.event_index()
    layer = np.rint(clouds.points[:, 2]).astype(np.int64)
    e = clouds.points[:, 3].astype(np.float64)
    key = ev * n_layers + layer
    core = None
    if core_grid_mm is None:
        counts = np.bincount(key, minlength=n * n_layers).reshape(n, n_layers)
    else:
        is_core = core_mask(clouds.points, core_grid_mm)
        counts = np.bincount(key[~is_core], minlength=n * n_layers).reshape(n, n_layers)
        core = np.bincount(key[is_core], weights=e[is_core], minlength=n * n_layers).reshape(n, n_layers)
    energies = np.bincount(key, weights=e, minlength=n * n_layers).reshape(n, n_layers)
    total = np.bincount(ev, weights=e, minlength=n)
    safe = np.where(total > 0, total, 1.0)
    cog = np.stack([np.bincount(ev, weights=e * clouds.points[:, c], minlength=n) / safe for c in (0, 1)], axis=1)
    return Summaries(counts, energies, cog, core)


class PointsPreprocessor:
    """Fitted encodings of conditions, summaries and points (see the module docstring).

    Args:
        n_layers: readout layers ``L``.
        state: a saved :meth:`state` (else call :meth:`fit`).
        core: the core split (module docstring); :meth:`fit` refuses it for a geometry without
            fine squares. A saved state keeps its own.
    """

    def __init__(self, n_layers: int, state: dict[str, Any] | None = None, *, core: bool = False) -> None:
        self.n_layers = int(n_layers)
        self.core = bool(core)
        self.cond_mu, self.cond_sd = 0.0, 1.0
        self.sum_mu = np.zeros(self.n_summary)
        self.sum_sd = np.ones(self.n_summary)
        self.pt_mu, self.pt_sd = np.zeros(4), np.ones(4)
        self.n_max = 1
        self.xy_scale_mm = XY_SCALE_MM
        self.grid_mm: np.ndarray | None = None
        self.occupancy: dict[str, Any] | None = None
        self.occupancy_target: dict[str, Any] | None = None
        self.radial: dict[str, Any] | None = None
        self.radial_target: dict[str, Any] | None = None
        self.cog_scale: Any = None
        self.cog_shift: Any = None
        self.cog_target: dict[str, Any] | None = None
        self.cells: dict[str, Any] | None = None
        self.cells_target: dict[str, Any] | None = None
        if state is not None:
            self.load_state(state)

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """JSON-able state (round trip: ``PointsPreprocessor(L, state)``)."""
        return {
            "n_layers": self.n_layers,
            "cond": [self.cond_mu, self.cond_sd],
            "summary_mu": self.sum_mu.tolist(),
            "summary_sd": self.sum_sd.tolist(),
            "point_mu": self.pt_mu.tolist(),
            "point_sd": self.pt_sd.tolist(),
            "n_max": self.n_max,
            "xy_scale_mm": self.xy_scale_mm,
            "e_scale_mev": E_SCALE_MEV,
            "occupancy": self.occupancy,
            "occupancy_target": self.occupancy_target,
            "radial": self.radial,
            "radial_target": self.radial_target,
            "cog_scale": None if self.cog_scale is None else [float(v) for v in self.cog_scale],
            "cog_shift": None if self.cog_shift is None else [float(v) for v in self.cog_shift],
            "cog_target": self.cog_target,
            "cells": self.cells,
            "cells_target": self.cells_target,
            "grid_mm": None if self.grid_mm is None else self.grid_mm.tolist(),
            "core": self.core,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.cond_mu, self.cond_sd = (float(v) for v in state["cond"])
        self.sum_mu = np.asarray(state["summary_mu"], np.float64)
        self.sum_sd = np.asarray(state["summary_sd"], np.float64)
        self.pt_mu = np.asarray(state["point_mu"], np.float64)
        self.pt_sd = np.asarray(state["point_sd"], np.float64)
        self.n_max = int(state["n_max"])
        self.xy_scale_mm = float(state.get("xy_scale_mm", LEGACY_XY_SCALE_MM))
        self.core = bool(state.get("core", False))
        self.occupancy = state.get("occupancy")
        self.occupancy_target = state.get("occupancy_target")
        self.radial = state.get("radial")
        self.radial_target = state.get("radial_target")
        scale = state.get("cog_scale")
        self.cog_scale = None if scale is None else np.asarray(scale, np.float64)
        shift = state.get("cog_shift")
        self.cog_shift = None if shift is None else np.asarray(shift, np.float64)
        self.cog_target = state.get("cog_target")
        self.cells = state.get("cells")
        self.cells_target = state.get("cells_target")
        grid = state.get("grid_mm")
        self.grid_mm = None if grid is None else np.asarray(grid, np.float64)

    @classmethod
    def example(cls, n_layers: int) -> PointsPreprocessor:
        """An unfitted (identity-scaled) preprocessor, for shape checks."""
        pre = cls(n_layers)
        pre.n_max = 64
        return pre

    # ---------------------------------------------------------------- fit
    def fit(self, clouds: PointClouds, seed: int = 0) -> PointsPreprocessor:
        """Means and spreads of the encodings on ``clouds`` (the training split)."""
        self.grid_mm = fine_grid_mm(clouds.geometry, self.n_layers)
        if self.core and self.grid_mm is None:
            raise ValueError("the core split needs a geometry with fine squares (subcells); this one has none")
        c = self._raw_cond(clouds.incident_mev)
        self.cond_mu, self.cond_sd = float(c.mean()), float(max(c.std(), 1e-6))
        s = self._raw_summaries(self.summaries_of(clouds), clouds.incident_mev)
        self.sum_mu, sd = s.mean(axis=0), s.std(axis=0)
        self.sum_sd = np.where(sd > 1e-6, sd, 1.0)
        flow = self.flow_points(clouds)
        p = self._raw_points(flow.points, np.random.default_rng(seed))
        self.pt_mu, sd = p.mean(axis=0), p.std(axis=0)
        self.pt_sd = np.where(sd > 1e-6, sd, 1.0)
        self.n_max = int(flow.num_points.max()) if len(flow) else 1
        return self

    def summaries_of(self, clouds: PointClouds) -> Summaries:
        """:func:`shower_summaries` of ``clouds`` as this preprocessor encodes them (with the core split
        where it has one)."""
        return shower_summaries(clouds, self.n_layers, self.grid_mm if self.core else None)

    def flow_points(self, clouds: PointClouds) -> PointClouds:
        """The points the point flow learns: all of them, or those outside the core under the core split."""
        if not self.core or self.grid_mm is None:
            return clouds
        return without_core(clouds, self.grid_mm)

    def radial_target_of(self, clouds: PointClouds, seed: int = 0) -> dict[str, Any]:
        """The target of the radial energy calibration: :func:`radial_profile` of the training showers
        (the points the point flow learns, spread over their fine squares)."""
        inc = np.asarray(clouds.incident_mev, np.float64)
        inner = energy_edges(inc, RADIAL_ENERGY_BINS)
        share = radial_profile(
            self.flow_points(clouds), self.n_layers, energy_edges_mev=inner, jitter_mm=self.grid_mm, seed=seed
        )
        return {
            "edges_mm": list(RADIAL_EDGES_MM),
            "energy_edges_mev": [float(v) for v in inner],
            "share": share.tolist(),
            "n_showers": len(clouds),
        }

    def cells_target_of(self, clouds: PointClouds) -> dict[str, Any] | None:
        """The target of the cell-energy calibration: :func:`cell_quantiles` of the training showers in
        the radial calibration's incident-energy bins, and 64 quantiles of their incident energies
        (the calibration draws its showers from them); ``None`` without a square-cell geometry."""
        geo = clouds.geometry
        if geo is None or not geo.is_crystal or geo.n_layers != self.n_layers or not len(clouds):
            return None
        inc = np.asarray(clouds.incident_mev, np.float64)
        inner = energy_edges(inc, RADIAL_ENERGY_BINS)
        return {
            "energy_edges_mev": inner.tolist(),
            "log10_mev": cell_quantiles(clouds, inner).tolist(),
            "incident_quantiles_mev": np.quantile(inc, (np.arange(64) + 0.5) / 64).tolist(),
            "n_showers": len(clouds),
        }

    def generated_profile(self, clouds: PointClouds) -> np.ndarray:
        """:func:`radial_profile` of generated showers at the target's edges; under the core split
        without the core points (those :func:`calibrate` puts exactly on the axis)."""
        target = self.radial_target or {}
        edges, e_edges = target.get("edges_mm", RADIAL_EDGES_MM), target.get("energy_edges_mev", [])
        if self.core:
            p = clouds.points
            keep = (p[:, 0] != 0) | (p[:, 1] != 0)
            sizes = np.bincount(clouds.event_index()[keep], minlength=len(clouds))
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(clouds.offsets.dtype)
            clouds = PointClouds(p[keep], offsets, clouds.incident_mev, clouds.geometry)
        return radial_profile(clouds, self.n_layers, edges_mm=edges, energy_edges_mev=e_edges)

    # ---------------------------------------------------------------- conditions
    @staticmethod
    def _raw_cond(incident_mev: np.ndarray) -> np.ndarray:
        return np.log(np.asarray(incident_mev, np.float64).reshape(-1) / 1e3)

    def condition(self, incident_mev: np.ndarray) -> np.ndarray:
        """(N, 1) float32 energy feature."""
        return ((self._raw_cond(incident_mev) - self.cond_mu) / self.cond_sd).astype(np.float32)[:, None]

    # ---------------------------------------------------------------- summaries
    @property
    def n_summary(self) -> int:
        """Summary features per shower: ``2 L + 4``, ``3 L + 4`` with the core split."""
        return (3 if self.core else 2) * self.n_layers + 4

    def _raw_summaries(self, s: Summaries, incident_mev: np.ndarray) -> np.ndarray:
        total_e = s.energies.sum(axis=1)
        total_n = s.counts.sum(axis=1)
        inc = np.asarray(incident_mev, np.float64).reshape(-1)
        e_frac = s.energies / np.where(total_e > 0, total_e, 1.0)[:, None]
        n_frac = s.counts / np.where(total_n > 0, total_n, 1)[:, None]
        cols = [
            np.log(np.maximum(total_e, 1e-6) / inc)[:, None],
            np.log(np.maximum(total_n, 1))[:, None],
            np.log(e_frac + FRACTION_FLOOR),
            np.log(n_frac + FRACTION_FLOOR),
            s.cog,
        ]
        if self.core:
            if s.core is None:
                raise ValueError("summaries without core energies for a preprocessor with the core split")
            frac = np.divide(s.core, s.energies, out=np.zeros_like(s.energies), where=s.energies > 0)
            cols.append(np.log(np.clip(frac, 0.0, 1.0) + FRACTION_FLOOR))
        return np.concatenate(cols, axis=1)

    def encode_summaries(self, s: Summaries, incident_mev: np.ndarray) -> np.ndarray:
        """(N, 2 L + 4) float32 standardised summaries of showers of the given incident energies."""
        return ((self._raw_summaries(s, incident_mev) - self.sum_mu) / self.sum_sd).astype(np.float32)

    def decode_summaries(self, feats: np.ndarray, incident_mev: np.ndarray) -> Summaries:
        """Summaries in physical units (see the module docstring): the visible energy and the number of
        points are the drawn totals (points capped at ``n_max``), shared among the layers by the drawn
        fractions (counts by largest remainders, so they add up exactly); a layer gets points only
        when it gets energy and energy only when it gets points (the energy of a layer left without
        points is shared among the others)."""
        raw = np.asarray(feats, np.float64) * self.sum_sd + self.sum_mu
        n_l = self.n_layers
        inc = np.asarray(incident_mev, np.float64).reshape(-1)
        total_e = inc * np.exp(np.clip(raw[:, 0], -30.0, 5.0))
        total_n = np.clip(np.rint(np.exp(np.clip(raw[:, 1], 0.0, 20.0))), 1, self.n_max).astype(np.int64)
        e_frac = _fractions(raw[:, 2 : 2 + n_l])
        n_frac = _fractions(raw[:, 2 + n_l : 2 + 2 * n_l])
        n_frac = np.where(e_frac > 0, n_frac, 0.0)
        n_frac = _renormalise(n_frac, e_frac)
        counts = _largest_remainders(n_frac, total_n)
        cog = raw[:, 2 + 2 * n_l : 4 + 2 * n_l].copy()
        if not self.core:
            e_frac = _renormalise(np.where(counts > 0, e_frac, 0.0), counts.astype(np.float64))
            return Summaries(counts, e_frac * total_e[:, None], cog)
        # a layer keeps its energy if it has points or a core; one without points is all core
        core_frac = np.clip(np.exp(np.clip(raw[:, 4 + 2 * n_l :], -30.0, 1.0)) - FRACTION_FLOOR, 0.0, 1.0)
        core_frac = np.where(core_frac < CORE_MIN_FRACTION, 0.0, core_frac)  # float32 noise around the floor
        e_frac = _renormalise(np.where((counts > 0) | (core_frac > 0), e_frac, 0.0), counts.astype(np.float64))
        core_frac = np.where(counts > 0, core_frac, 1.0)
        energies = e_frac * total_e[:, None]
        return Summaries(counts, energies, cog, core_frac * energies)

    def calibrated_counts(self, counts: np.ndarray, cap: int) -> np.ndarray:
        """Points per layer to generate for the drawn ``counts`` (N, L) (identity without a fitted
        occupancy calibration); a row's total is capped at ``cap`` (the model's slots)."""
        if self.occupancy is None:
            return np.asarray(counts, np.int64)
        return apply_occupancy(counts, self.occupancy, cap)

    # ---------------------------------------------------------------- points
    def _raw_points(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = np.asarray(points, np.float64)
        out = np.empty_like(p)
        layer = np.rint(p[:, 2])
        out[:, 2] = layer + rng.random(len(p))
        xy = p[:, :2]
        if self.grid_mm is not None:  # a uniform offset within the point's fine square
            pitch = self.grid_mm[np.clip(layer.astype(np.int64), 0, self.n_layers - 1)]
            xy = xy + pitch[:, None] * (rng.random((len(p), 2)) - 0.5)
        out[:, 0] = np.arcsinh(xy[:, 0] / self.xy_scale_mm)
        out[:, 1] = np.arcsinh(xy[:, 1] / self.xy_scale_mm)
        out[:, 3] = np.log(np.maximum(p[:, 3], 1e-12) / E_SCALE_MEV)
        return out

    def encode_points(self, points: np.ndarray, seed: int = 0) -> np.ndarray:
        """(M, 4) float32 preprocessed points (x, y, layer, energy in mm, index, MeV -> features)."""
        return ((self._raw_points(points, np.random.default_rng(seed)) - self.pt_mu) / self.pt_sd).astype(np.float32)

    def decode_points(self, x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        """Per shower, the real points (n_i, 4) in mm, continuous depth (layers, clipped to [0, L)), MeV."""
        raw = np.asarray(x, np.float64) * self.pt_sd + self.pt_mu
        out = []
        for i in range(raw.shape[0]):
            r = raw[i][np.asarray(mask[i], bool)]
            pts = np.empty_like(r)
            pts[:, 0] = self.xy_scale_mm * np.sinh(np.clip(r[:, 0], -20, 20))
            pts[:, 1] = self.xy_scale_mm * np.sinh(np.clip(r[:, 1], -20, 20))
            pts[:, 2] = np.clip(r[:, 2], 0.0, np.nextafter(self.n_layers, 0))
            pts[:, 3] = E_SCALE_MEV * np.exp(np.clip(r[:, 3], -40.0, 40.0))
            out.append(pts)
        return out


FACE_MARGIN = 1e-6
"""Relative margin inside the face at which :func:`calibrate` holds points shifted over its edge."""


def fine_grid_mm(geometry: Geometry | None, n_layers: int) -> np.ndarray | None:
    """Width (mm) of each layer's fine squares (0 for a layer without them), or ``None`` where no
    layer has them (no geometry, another number of layers, or no ``subcells``)."""
    if geometry is None or geometry.n_layers != n_layers or not geometry.has_subcells:
        return None
    return np.asarray([lay.fine_mm if lay.is_crystal and lay.subcells > 1 else 0.0 for lay in geometry.readout])


def face_half_widths(geometry: Geometry | None, n_layers: int) -> np.ndarray | None:
    """Half the side of each layer's square cell matrix (mm), or ``None`` for a geometry without one
    (no geometry, a cylindrical readout or another number of layers)."""
    if geometry is None or not geometry.is_crystal or geometry.n_layers != n_layers:
        return None
    return np.asarray([0.5 * lay.n_crystals * lay.crystal_mm for lay in geometry.readout], np.float64)


def calibrate(
    points: list[np.ndarray],
    summaries: Summaries,
    incident_mev: np.ndarray,
    geometry: Geometry | None,
    radial: dict[str, Any] | None = None,
    cells: dict[str, Any] | None = None,
) -> PointClouds:
    """Showers that obey ``summaries`` exactly (see the module docstring).

    Args:
        points: per shower, (n_i, 4) decoded points with ``n_i = summaries.counts[i].sum()``.
        summaries: the drawn points per layer, energy per layer and centre of gravity.
        incident_mev: (N,) incident energies.
        geometry: stored with the result.
        radial: the radial energy calibration (:func:`fit_radial`): each point's energy times the
            weight of its layer and radial bin (distance from the axis before the centre-of-gravity
            shift), before the layer energies are imposed.
        cells: the cell-energy calibration (:func:`fit_cell_energy`; needs a square-cell
            ``geometry``): last, each point's energy times its cell's factor, then the layer
            energies and the centre of gravity imposed again.

    Under the core split (``summaries.core`` given) the decoded points are the non-core ones: they
    carry ``energies - core`` in each layer and the whole centre-of-gravity shift, and each layer
    with core energy gets one more point at x = y = 0 with it.

    Returns:
        :class:`PointClouds` whose showers have ``energies[i, l]`` MeV in layer ``l`` and the
        energy-weighted centre ``cog[i]`` (shower without energy: unshifted), and ``counts[i, l]``
        points in layer ``l`` less those drawn beyond the face of a square-cell ``geometry``
        (Geant4 records nothing there; the layer's energy goes to its other points). A point the
        centre-of-gravity shift carries over the face's edge is held just inside it.
    """
    n_layers = summaries.counts.shape[1]
    half = face_half_widths(geometry, n_layers)
    out, sizes = [], []
    step_tables = None
    if cells is not None and geometry is not None:
        lo, hi, nodes = cells["grid_log10"]
        shift = np.asarray(cells["shift"], np.float64)
        step_tables = (
            *cell_tables(geometry),
            np.linspace(lo, hi, int(nodes)),
            shift[None] if shift.ndim == 1 else shift,
        )
    for i, pts in enumerate(points):
        counts = summaries.counts[i]
        if len(pts) != counts.sum():
            raise ValueError(f"shower {i}: {len(pts)} points for {counts.sum()} drawn")
        order = np.argsort(pts[:, 2], kind="stable")
        p = pts[order].copy()
        layer = np.repeat(np.arange(n_layers), counts)
        p[:, 2] = layer
        if half is not None:  # beyond the calorimeter's face: no energy (dropped below)
            p[(np.abs(p[:, 0]) >= half[layer]) | (np.abs(p[:, 1]) >= half[layer]), 3] = 0.0
        if radial is not None:
            p[:, 3] *= radial_weights(p, layer, radial, float(incident_mev[i]))
        sums = np.bincount(layer, weights=p[:, 3], minlength=n_layers)
        core = None if summaries.core is None else summaries.core[i]
        target = summaries.energies[i] if core is None else summaries.energies[i] - core
        scale = np.divide(target, sums, out=np.zeros(n_layers), where=sums > 0)
        p[:, 3] *= scale[layer]
        total = p[:, 3].sum()
        if total > 0:  # the core points sit on the axis: the others carry the whole shift
            whole = total if core is None else total + core.sum()
            p[:, 0] += (summaries.cog[i, 0] * whole - np.dot(p[:, 3], p[:, 0])) / total
            p[:, 1] += (summaries.cog[i, 1] * whole - np.dot(p[:, 3], p[:, 1])) / total
        if half is not None:  # a point the shift carried over the edge stays on it
            edge = (half * (1.0 - FACE_MARGIN))[layer, None]
            p[:, :2] = np.clip(p[:, :2], -edge, edge)
        n_free = len(p)
        if core is not None:
            on = np.nonzero(core > 0)[0]
            p = np.concatenate([p, np.stack([0 * on, 0 * on, on, core[on]], axis=1).astype(np.float64)])
        if cells is not None and step_tables is not None:
            _cell_step(p, n_free, cells, step_tables, summaries.energies[i], summaries.cog[i], float(incident_mev[i]))
            if half is not None:
                edge = (half * (1.0 - FACE_MARGIN))[layer, None]
                p[:n_free, :2] = np.clip(p[:n_free, :2], -edge, edge)
        if core is not None:
            p = p[np.argsort(p[:, 2], kind="stable")]
        keep = p[:, 3] > 0
        out.append(p[keep])
        sizes.append(int(keep.sum()))
    flat = np.concatenate(out) if out else np.zeros((0, 4))
    return PointClouds(flat.astype(np.float32), np.concatenate([[0], np.cumsum(sizes)]), incident_mev, geometry)


def _cell_step(
    p: np.ndarray,
    n_free: int,
    cells: dict[str, Any],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    energies: np.ndarray,
    cog: np.ndarray,
    inc: float,
) -> None:
    """The cell-energy calibration of one shower, in place: ``p`` (M, 4) its points, the first
    ``n_free`` movable (the others are core points on the axis); ``tables``: :func:`~showerforge.data.points.cell_tables`,
    the grid and the shifts (K, nodes)."""
    side, width, offset, grid, shift = tables
    key = cell_keys(p, None, (side, width, offset))
    ok = key >= 0
    n_cells = int(offset[-1] + side[-1] * side[-1])
    e_cell = np.bincount(np.where(ok, key, n_cells), weights=np.where(ok, p[:, 3], 0.0), minlength=n_cells + 1)
    mine = e_cell[np.where(ok, key, n_cells)]
    on = mine > 0
    k = int(energy_bin([inc], cells.get("energy_edges_mev", []))[0])
    p[on, 3] *= np.power(10.0, _on_grid(np.log10(mine[on]), grid, shift[k]))
    n_layers = len(energies)
    layer = np.clip(np.rint(p[:, 2]).astype(np.int64), 0, n_layers - 1)
    sums = np.bincount(layer, weights=p[:, 3], minlength=n_layers)
    p[:, 3] *= np.divide(energies, sums, out=np.zeros(n_layers), where=sums > 0)[layer]
    free = p[:n_free, 3].sum()
    if free > 0:
        whole = p[:, 3].sum()
        p[:n_free, 0] += (cog[0] * whole - np.dot(p[:, 3], p[:, 0])) / free
        p[:n_free, 1] += (cog[1] * whole - np.dot(p[:, 3], p[:, 1])) / free


# ---------------------------------------------------------------- occupancy calibration
def occupancy_table(
    counts: np.ndarray, cells: np.ndarray, *, n_bins: int = OCCUPANCY_BINS, min_per_bin: int = OCCUPANCY_MIN_PER_BIN
) -> dict[str, list[list[float]]]:
    """Mean cells above threshold against points, per layer, in quantile bins of the points.

    Args:
        counts: (N, L) points per layer of N showers.
        cells: (N, L) cells above threshold per layer of the same showers.
        n_bins: bins per layer (equal numbers of showers, sorted by points).
        min_per_bin: a layer with fewer than ``n_bins * min_per_bin`` showers with points gets no bins.

    Returns:
        ``{"log_n": [...], "cells": [...]}``: per layer the bins' mean ``log(points)`` (increasing;
        bins with equal means merged) and mean cells (made non-decreasing); empty lists for a layer
        without enough showers.
    """
    counts = np.asarray(counts, np.int64)
    cells = np.asarray(cells, np.float64)
    log_n: list[list[float]] = []
    mean_cells: list[list[float]] = []
    for layer in range(counts.shape[1]):
        n, c = counts[:, layer], cells[:, layer]
        has = n > 0
        if has.sum() < n_bins * min_per_bin:
            log_n.append([])
            mean_cells.append([])
            continue
        order = np.argsort(n[has], kind="stable")
        x = np.log(n[has][order].astype(np.float64))
        y = c[has][order]
        xs = np.array([b.mean() for b in np.array_split(x, n_bins)])
        ys = np.array([b.mean() for b in np.array_split(y, n_bins)])
        ux, inverse = np.unique(np.round(xs, 12), return_inverse=True)
        uy = np.bincount(inverse, weights=ys) / np.bincount(inverse)
        log_n.append(ux.tolist())
        mean_cells.append(np.maximum.accumulate(uy).tolist())
    return {"log_n": log_n, "cells": mean_cells}


def _invert(y: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """``log n`` at which the piecewise-linear non-decreasing ``ys(xs)`` reaches ``y``; beyond the
    ends, cells taken proportional to points (``log n`` shifted by ``log(y / y_end)``)."""
    if y <= ys[0]:
        return float(xs[0] + np.log(max(y, 1e-12) / max(ys[0], 1e-12)))
    if y >= ys[-1]:
        return float(xs[-1] + np.log(y / max(ys[-1], 1e-12)))
    strictly = ys + 1e-9 * np.arange(len(ys))  # flat stretches: the first point that reaches y
    return float(np.interp(y, strictly, xs))


def fit_occupancy(target: dict[str, Any], generated: dict[str, Any]) -> dict[str, Any]:
    """The point-count correction from two :func:`occupancy_table` results.

    At each target bin (``log n``, Geant4's mean cells ``c``), ``log n'`` is where the model's
    table reaches ``c``; the stored ratio ``log(n' / n)`` is clipped to ``[-log 4, log 4]``. A layer
    missing from either table keeps ratio 1.

    Returns:
        ``{"log_n": per layer knots, "log_ratio": per layer log(n'/n)}`` (see :func:`apply_occupancy`).
    """
    knots, ratios = [], []
    for xt, yt, xg, yg in zip(target["log_n"], target["cells"], generated["log_n"], generated["cells"]):
        if not xt or not xg:
            knots.append([0.0])
            ratios.append([0.0])
            continue
        xg_a, yg_a = np.asarray(xg, np.float64), np.asarray(yg, np.float64)
        r = [_invert(float(y), xg_a, yg_a) - float(x) for x, y in zip(xt, yt)]
        knots.append([float(x) for x in xt])
        ratios.append(np.clip(r, -OCCUPANCY_MAX_LOG_RATIO, OCCUPANCY_MAX_LOG_RATIO).tolist())
    return {"log_n": knots, "log_ratio": ratios}


def refine_occupancy(occupancy: dict[str, Any], target: dict[str, Any], calibrated: dict[str, Any]) -> dict[str, Any]:
    """One more step of the point-count correction, from the model's showers *with* ``occupancy``.

    The model's spread depends a little on the number of points it is asked for, so the first fit
    (:func:`fit_occupancy`, measured without the correction) leaves a few per cent of cells over or
    under. ``calibrated`` is the :func:`occupancy_table` of calibrated showers against the counts
    the shower flow drew (before the correction); at each target knot the log of the cell ratio,
    divided by the local slope ``d log cells / d log n`` of Geant4's table (clipped to [0.3, 1.5]),
    is added to the stored ``log(n' / n)`` (clipped to ``[-log 4, log 4]`` as before). A layer without
    tables, or whose knots differ from the target's, is left as it was.
    """
    out = {
        **occupancy,
        "log_n": [list(k) for k in occupancy["log_n"]],
        "log_ratio": [list(r) for r in occupancy["log_ratio"]],
    }
    for layer, (xt, yt, xc, yc) in enumerate(
        zip(target["log_n"], target["cells"], calibrated["log_n"], calibrated["cells"])
    ):
        if not xt or not xc or len(out["log_n"][layer]) != len(xt):
            continue
        x = np.asarray(xt, np.float64)
        log_t = np.log(np.maximum(np.asarray(yt, np.float64), 1e-3))
        log_c = np.log(np.maximum(np.interp(x, np.asarray(xc, np.float64), np.asarray(yc, np.float64)), 1e-3))
        slope = np.clip(np.gradient(log_t, x), 0.3, 1.5) if len(x) > 1 else np.ones(1)
        r = np.asarray(out["log_ratio"][layer], np.float64) + (log_t - log_c) / slope
        out["log_ratio"][layer] = np.clip(r, -OCCUPANCY_MAX_LOG_RATIO, OCCUPANCY_MAX_LOG_RATIO).tolist()
    return out


def apply_occupancy(counts: np.ndarray, occupancy: dict[str, Any], cap: int) -> np.ndarray:
    """Points to generate per layer: ``n' = max(1, round(n * exp(r(log n))))`` for ``n > 0`` (``r``
    interpolated linearly in ``log n`` between the knots, constant beyond them), 0 for ``n = 0``; a
    shower above ``cap`` points in all is scaled down to ``cap`` (largest remainders)."""
    counts = np.asarray(counts, np.int64)
    out = np.zeros_like(counts)
    log_n = np.log(np.maximum(counts, 1).astype(np.float64))
    for layer, (xs, rs) in enumerate(zip(occupancy["log_n"], occupancy["log_ratio"])):
        r = np.interp(log_n[:, layer], np.asarray(xs, np.float64), np.asarray(rs, np.float64))
        scaled = np.maximum(1.0, np.rint(counts[:, layer] * np.exp(r)))
        out[:, layer] = np.where(counts[:, layer] > 0, scaled, 0).astype(np.int64)
    total = out.sum(axis=1)
    over = total > cap
    if over.any():
        frac = out[over] / total[over, None]
        out[over] = _largest_remainders(frac, np.full(int(over.sum()), int(cap), np.int64))
    return out


# ---------------------------------------------------------------- radial energy calibration
def _radial_bin(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    r = np.sqrt(x * x + y * y)
    return (r[:, None] >= edges[None, 1:]).sum(axis=1)


def energy_edges(incident_mev: Any, n_bins: int) -> np.ndarray:
    """Inner edges (MeV) of up to ``n_bins`` incident-energy bins with equal numbers of showers, each
    halfway between two distinct energies of ``incident_mev`` (so no shower, and no request at a
    training energy, sits on an edge, in float64 or float32); none when all energies are equal."""
    e = np.unique(np.asarray(incident_mev, np.float64).reshape(-1))
    if len(e) < 2:
        return np.zeros(0)
    q = np.quantile(np.asarray(incident_mev, np.float64), np.arange(1, n_bins) / n_bins)
    above = np.clip(np.searchsorted(e, q, side="right"), 1, len(e) - 1)  # the first distinct energy above
    return np.unique(0.5 * (e[above - 1] + e[above]))


def energy_bin(incident_mev: Any, energy_edges_mev: Any) -> np.ndarray:
    """Index of each incident energy among the inner ``energy_edges_mev`` (0 below the first)."""
    e = np.asarray(incident_mev, np.float64).reshape(-1)
    return (e[:, None] >= np.asarray(energy_edges_mev, np.float64).reshape(1, -1)).sum(axis=1)


def radial_profile(
    clouds: PointClouds,
    n_layers: int,
    *,
    edges_mm: Any = RADIAL_EDGES_MM,
    energy_edges_mev: Any = (),
    jitter_mm: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """(K, L, B) share of each layer's energy (summed over the showers of each of ``K`` incident-energy
    bins) in each radial bin around the axis.

    Args:
        clouds: the showers (x, y mm; layer; MeV).
        n_layers: layers ``L``.
        edges_mm: lower edges of the ``B`` bins, increasing from 0 (the last bin is open).
        energy_edges_mev: inner edges of the ``K`` incident-energy bins (none: one bin).
        jitter_mm: per layer, the width of the fine squares on which the points sit (Geant4's):
            each point is moved uniformly within its square first (``seed``), as the model learns them.

    A layer without energy has zero shares.
    """
    edges = np.asarray(edges_mm, np.float64)
    n_e = len(np.asarray(energy_edges_mev, np.float64).reshape(-1)) + 1
    p = np.asarray(clouds.points, np.float64)
    layer = np.clip(np.rint(p[:, 2]).astype(np.int64), 0, n_layers - 1)
    x, y = p[:, 0], p[:, 1]
    if jitter_mm is not None:
        rng = np.random.default_rng(seed)
        pitch = np.asarray(jitter_mm, np.float64)[layer]
        x = x + pitch * (rng.random(len(p)) - 0.5)
        y = y + pitch * (rng.random(len(p)) - 0.5)
    n_bins = len(edges)
    ebin = energy_bin(clouds.incident_mev, energy_edges_mev)[clouds.event_index()]
    key = (ebin * n_layers + layer) * n_bins + _radial_bin(x, y, edges)
    e = np.bincount(key, weights=p[:, 3], minlength=n_e * n_layers * n_bins).astype(np.float64)
    e = e.reshape(n_e, n_layers, n_bins)
    total = e.sum(axis=2, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def fit_radial(target: dict[str, Any], generated: np.ndarray) -> dict[str, Any]:
    """Weights that turn the ``generated`` :func:`radial_profile` into the target's.

    Args:
        target: ``{"edges_mm": [...], "energy_edges_mev": [...], "share": (K, L, B)}`` (the
            training showers' profile).
        generated: (K, L, B) the model's profile with the same edges.

    Returns:
        ``{"edges_mm": ..., "energy_edges_mev": ..., "log_weight": (K, L, B)}``: ``log(target /
        generated)`` clipped to ``[-log 4, log 4]``; ``-log 4`` where only the target's share is 0,
        0 where the model's is (nothing there to weight).
    """
    t = np.asarray(target["share"], np.float64)
    g = np.asarray(generated, np.float64).reshape(t.shape)
    ok = (t > 0) & (g > 0)
    log_w = np.where(ok, np.log(np.where(ok, t, 1.0) / np.where(ok, g, 1.0)), 0.0)
    log_w = np.where((g > 0) & (t <= 0), -RADIAL_MAX_LOG_WEIGHT, log_w)  # energy where the target has none
    return {
        "edges_mm": [float(v) for v in target["edges_mm"]],
        "energy_edges_mev": [float(v) for v in target.get("energy_edges_mev", [])],
        "log_weight": np.clip(log_w, -RADIAL_MAX_LOG_WEIGHT, RADIAL_MAX_LOG_WEIGHT).tolist(),
    }


def refine_radial(radial: dict[str, Any], target: dict[str, Any], calibrated: np.ndarray) -> dict[str, Any]:
    """One more step of the radial calibration: ``calibrated`` is the profile of showers made *with*
    ``radial``; each weight is multiplied by ``target / calibrated`` (same clipping as :func:`fit_radial`)."""
    step = np.asarray(fit_radial(target, calibrated)["log_weight"], np.float64)
    log_w = np.asarray(radial["log_weight"], np.float64).reshape(step.shape) + step
    return {**radial, "log_weight": np.clip(log_w, -RADIAL_MAX_LOG_WEIGHT, RADIAL_MAX_LOG_WEIGHT).tolist()}


def radial_log_weights(radial: dict[str, Any], n_layers: int) -> np.ndarray:
    """(K, L, B) log weights of ``radial`` (a table without energy bins has K = 1)."""
    return np.asarray(radial["log_weight"], np.float64).reshape(-1, n_layers, len(radial["edges_mm"]))


def radial_weights(points: np.ndarray, layer: np.ndarray, radial: dict[str, Any], incident_mev: float) -> np.ndarray:
    """(M,) the weight of each point (x, y in mm; ``layer`` its layer index) of a shower of
    ``incident_mev`` under ``radial``."""
    edges = np.asarray(radial["edges_mm"], np.float64)
    layer = np.asarray(layer, np.int64)
    log_w = np.asarray(radial["log_weight"], np.float64)
    log_w = log_w[None] if log_w.ndim == 2 else log_w  # a table without energy bins
    k = int(energy_bin([incident_mev], radial.get("energy_edges_mev", []))[0])
    p = np.asarray(points, np.float64)
    return np.exp(log_w[k][layer, _radial_bin(p[:, 0], p[:, 1], edges)])


# ---------------------------------------------------------------- cell-energy calibration
CELL_CHUNK = 2000
"""Showers per pass of :func:`cell_log_energies` (bounds its memory on large files)."""


def cell_log_energies(
    clouds: PointClouds, geometry: Geometry | None = None, threshold_mip: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``log10(E_cell / MeV)`` of every cell with energy at or above ``threshold_mip`` x its layer's
    MIP energy (0: every cell with energy; :func:`~showerforge.data.points.points_to_cells`, in
    passes of :data:`CELL_CHUNK` showers) and the index of its shower."""
    geo = geometry or clouds.geometry
    if geo is None or not geo.is_crystal:
        raise ValueError("the cell-energy calibration needs a square-cell geometry")
    logs, events = [np.zeros(0)], [np.zeros(0, np.int64)]
    for lo in range(0, len(clouds), CELL_CHUNK):
        part = clouds if len(clouds) <= CELL_CHUNK else clouds.select(slice(lo, lo + CELL_CHUNK))
        hits = points_to_cells(part, geo, threshold_mip)
        logs.append(np.log10(hits.energy_mev))
        events.append(np.asarray(hits.event, np.int64) + lo)
    return np.concatenate(logs), np.concatenate(events)


def cell_levels(n_levels: int = CELL_LEVELS) -> np.ndarray:
    """Quantile levels of the cell-energy calibration: three quarters evenly over [0.001, 0.99], a
    quarter evenly in ``log10(1 - level)`` from 0.99 to ``1 - 10**-5.5`` (the few highest cells of a
    shower hold most of its energy: a few per cent off there moves every other cell when the layer
    energies are imposed again)."""
    n_top = n_levels // 4
    top = 1.0 - np.logspace(-2.0, -5.5, n_top + 1)[1:]
    return np.concatenate([np.linspace(0.001, 0.99, n_levels - n_top), top])


def cell_quantiles(
    clouds: PointClouds,
    energy_edges_mev: Any = (),
    geometry: Geometry | None = None,
    n_levels: int = CELL_LEVELS,
    threshold_mip: float = 0.0,
) -> np.ndarray:
    """(K, n_levels) quantiles (:func:`cell_levels`) of ``log10(E_cell / MeV)`` of the cells with
    energy (at or above ``threshold_mip``; :func:`cell_log_energies`) in each of the ``K``
    incident-energy bins of ``energy_edges_mev`` (inner edges); a bin without cells is NaN."""
    log_e, ev = cell_log_energies(clouds, geometry, threshold_mip)
    k_of = energy_bin(clouds.incident_mev, energy_edges_mev)[ev]
    levels = cell_levels(n_levels)
    n_e = len(np.asarray(energy_edges_mev, np.float64).reshape(-1)) + 1
    out = np.full((n_e, n_levels), np.nan)
    for k in range(n_e):
        sel = log_e[k_of == k]
        if len(sel):
            out[k] = np.quantile(sel, levels)
    return out


def _grid() -> np.ndarray:
    lo, hi, n = CELL_GRID_LOG10
    return np.linspace(lo, hi, int(n))


def _shift_table(source_q: np.ndarray, dest_q: np.ndarray) -> np.ndarray:
    """Shift of log10 E on the grid that takes quantile ``source_q`` to ``dest_q`` (constant beyond)."""
    return np.interp(_grid(), np.maximum.accumulate(source_q), dest_q - source_q)


def fit_cell_energy(target: dict[str, Any], generated: np.ndarray) -> dict[str, Any]:
    """The cell-energy calibration that takes the ``generated`` :func:`cell_quantiles` to the target's.

    Args:
        target: ``{"energy_edges_mev": [...], "log10_mev": (K, levels)}`` (the training showers').
        generated: (K, levels) the model's quantiles in the same bins.

    Returns:
        ``{"energy_edges_mev": ..., "grid_log10": [from, to, nodes], "shift": (K, nodes)}``, the shift
        of ``log10 E_cell`` at each grid node, within :data:`CELL_MAX_LOG10_SHIFT`; 0 in a bin where
        either side has no cells.
    """
    t = np.asarray(target["log10_mev"], np.float64)
    g = np.asarray(generated, np.float64).reshape(t.shape)
    shift = np.zeros((len(t), int(CELL_GRID_LOG10[2])))
    for k in range(len(t)):
        if np.isfinite(t[k]).all() and np.isfinite(g[k]).all():
            shift[k] = _shift_table(g[k], t[k])
    return {
        "energy_edges_mev": [float(v) for v in target.get("energy_edges_mev", [])],
        "grid_log10": [float(v) for v in CELL_GRID_LOG10],
        "shift": np.clip(shift, -CELL_MAX_LOG10_SHIFT, CELL_MAX_LOG10_SHIFT).tolist(),
    }


def refine_cell_energy(cells: dict[str, Any], target: dict[str, Any], calibrated: np.ndarray) -> dict[str, Any]:
    """One more step: ``calibrated`` are the quantiles of showers made *with* ``cells``; the correction
    that takes them to the target's is composed after the stored map (``s(g) + c(g + s(g))``)."""
    t = np.asarray(target["log10_mev"], np.float64)
    c = np.asarray(calibrated, np.float64).reshape(t.shape)
    grid = _grid()
    shift = np.asarray(cells["shift"], np.float64).reshape(len(t), -1)
    out = shift.copy()
    for k in range(len(t)):
        if np.isfinite(t[k]).all() and np.isfinite(c[k]).all():
            out[k] = shift[k] + np.interp(grid + shift[k], np.maximum.accumulate(c[k]), t[k] - c[k])
    return {**cells, "shift": np.clip(out, -CELL_MAX_LOG10_SHIFT, CELL_MAX_LOG10_SHIFT).tolist()}


def _on_grid(x: np.ndarray, grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` on the uniform ``grid`` read at ``x``: linear in between, constant beyond the ends
    (``numpy.interp`` without its search; the ONNX graph reads the table the same way)."""
    u = np.clip((np.asarray(x, np.float64) - grid[0]) / (grid[1] - grid[0]), 0.0, len(grid) - 1.0)
    i0 = np.minimum(u.astype(np.int64), len(grid) - 2)
    t = u - i0
    return values[i0] * (1.0 - t) + values[i0 + 1] * t


def cell_energy_factors(log10_e: np.ndarray, cells: dict[str, Any], incident_mev: float) -> np.ndarray:
    """The factor ``10**shift(log10 E_cell)`` of each cell of a shower of ``incident_mev`` under ``cells``."""
    shift = np.asarray(cells["shift"], np.float64)
    shift = shift[None] if shift.ndim == 1 else shift
    k = int(energy_bin([incident_mev], cells.get("energy_edges_mev", []))[0])
    lo, hi, n = cells["grid_log10"]
    return np.power(10.0, _on_grid(log10_e, np.linspace(lo, hi, int(n)), shift[k]))
