"""Observables of point-cloud showers, measured on the cells above the readout threshold.

The points of each shower are first projected onto the geometry's cells with
:func:`showerforge.data.points.points_to_cells` (a cell's energy is the sum of its points; cells
below ``threshold_mip`` x the MIP energy of their layer are dropped, 0.5 MIP by default, as a
highly granular Si-W readout). Per shower (:class:`PointObservables`):

* ``n_hits``: cells above threshold;
* ``e_vis_over_e_inc``: visible energy (sum of those cells, MeV) / incident energy (MeV);
* ``cog_x``, ``cog_y``: energy-weighted centre of gravity of the cell centres, mm (the beam enters
  at x = y = 0); ``cog_z``: energy-weighted mean of the layers' sensor depths
  (:meth:`~showerforge.geometry.Geometry.sensor_z_mm`), mm from the front face; NaN for a shower
  without hits;
* ``layer_energy`` (N, L): energy per layer, MeV; ``layer_hits`` (N, L): hits per layer;
* ``ring_energy`` (N, R): energy in rings around the beam axis, MeV: ring ``k`` holds the cells
  whose centre lies at a distance ``r`` with ``round(r / w) = k``, ``w`` the smallest cell width
  (ring 0 is the central cell; ``ring_mm`` the rings' radii ``k w``);

and, pooled over the cells of all showers, ``cell_energy`` (MeV) with ``cell_event``, the shower
of each cell (so that a bootstrap can resample whole showers).

These are the observables of the CaloClouds papers (arXiv:2305.04847, arXiv:2309.05704): number
of hits, visible energy, cell-energy spectrum, centre of gravity, longitudinal and radial profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from showerforge.data.points import DEFAULT_THRESHOLD_MIP, CellHits, PointClouds, points_to_cells
from showerforge.geometry import Geometry

__all__ = [
    "SCALARS",
    "PROFILES",
    "OBSERVABLES",
    "LABELS",
    "PointObservables",
    "observe",
    "observe_cells",
    "classifier_inputs",
    "ring_of_cells",
]

SCALARS = ("n_hits", "e_vis_over_e_inc", "cog_x", "cog_y", "cog_z")
"""Per-shower numbers."""

PROFILES = ("longitudinal_energy", "longitudinal_hits", "radial_energy")
"""Profiles: energy (hits) per layer, energy per distance to the beam axis."""

OBSERVABLES = ("n_hits", "e_vis_over_e_inc", "cell_energy", "cog_x", "cog_y", "cog_z", *PROFILES)
"""Every observable of the report, in its order."""

LABELS = {
    "n_hits": "hits per shower (cells above threshold)",
    "e_vis_over_e_inc": "E_vis / E_inc",
    "cell_energy": "cell energy [MeV]",
    "cog_x": "centre of gravity x [mm]",
    "cog_y": "centre of gravity y [mm]",
    "cog_z": "centre of gravity z [mm]",
    "longitudinal_energy": "layer (energy-weighted)",
    "longitudinal_hits": "layer (hit-weighted)",
    "radial_energy": "distance to the beam axis [mm]",
}
"""Axis label of each observable, with its unit."""


@dataclass
class PointObservables:
    """The observables of N showers (see the module docstring for each field).

    Attributes:
        incident_mev: (N,) incident energies, MeV.
        scalars: name in :data:`SCALARS` -> (N,) float64.
        layer_energy: (N, L) float64 energy per layer, MeV.
        layer_hits: (N, L) float64 hits per layer.
        ring_energy: (N, R) float64 energy per ring around the beam axis, MeV.
        ring_mm: (R,) the rings' radii, mm.
        cell_energy: (K,) float64 energies of every cell above threshold, MeV.
        cell_event: (K,) int64 shower of each cell.
    """

    incident_mev: np.ndarray
    scalars: dict[str, np.ndarray]
    layer_energy: np.ndarray
    layer_hits: np.ndarray
    ring_energy: np.ndarray
    ring_mm: np.ndarray
    cell_energy: np.ndarray
    cell_event: np.ndarray

    def __len__(self) -> int:
        return len(self.incident_mev)

    def select(self, rows: np.ndarray) -> PointObservables:
        """The showers ``rows`` (integer array), in that order; cells renumbered accordingly."""
        rows = np.asarray(rows, dtype=np.int64)
        new_index = np.full(len(self), -1, dtype=np.int64)
        new_index[rows] = np.arange(len(rows))
        keep = new_index[self.cell_event] >= 0
        order = np.argsort(new_index[self.cell_event[keep]], kind="stable")
        pick = np.nonzero(keep)[0][order]
        return PointObservables(
            self.incident_mev[rows],
            {k: v[rows] for k, v in self.scalars.items()},
            self.layer_energy[rows],
            self.layer_hits[rows],
            self.ring_energy[rows],
            self.ring_mm,
            self.cell_energy[pick],
            new_index[self.cell_event[pick]],
        )


def ring_of_cells(geometry: Geometry) -> tuple[np.ndarray, float]:
    """(ring of each cell, ring width in mm): ``round(r / w)``, ``w`` the smallest cell width."""
    width = min(float(lay.crystal_mm) for lay in geometry.readout)
    x, y = geometry.voxel_xy_mm()
    return np.floor(np.hypot(x, y) / width + 0.5).astype(np.int64), width


def _centre(weights: np.ndarray, values: np.ndarray, event: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Energy-weighted mean of ``values`` per shower (NaN where the shower has no energy)."""
    sums = np.bincount(event, weights=weights * values, minlength=len(totals))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, sums / np.where(totals > 0, totals, 1.0), np.nan)


def observe_cells(cells: CellHits) -> PointObservables:
    """The observables of showers already projected onto cells (threshold applied)."""
    geo, n = cells.geometry, len(cells)
    n_layers = geo.n_layers
    e, ev, layer = cells.energy_mev, cells.event, cells.layer
    totals = np.bincount(ev, weights=e, minlength=n)
    z = geo.sensor_z_mm()[layer] if geo.has_stack else layer.astype(np.float64)
    ring, width = ring_of_cells(geo)
    n_rings = int(ring.max()) + 1
    flat_layer = ev * n_layers + layer
    flat_ring = ev * n_rings + ring[cells.cell]
    cog = cells.centre_of_gravity()
    scalars = {
        "n_hits": np.bincount(ev, minlength=n).astype(np.float64),
        "e_vis_over_e_inc": totals / cells.incident_mev,
        "cog_x": cog[:, 0],
        "cog_y": cog[:, 1],
        "cog_z": _centre(e, z, ev, totals),
    }
    return PointObservables(
        np.asarray(cells.incident_mev, dtype=np.float64),
        scalars,
        np.bincount(flat_layer, weights=e, minlength=n * n_layers).reshape(n, n_layers),
        np.bincount(flat_layer, minlength=n * n_layers).reshape(n, n_layers).astype(np.float64),
        np.bincount(flat_ring, weights=e, minlength=n * n_rings).reshape(n, n_rings),
        width * np.arange(n_rings, dtype=np.float64),
        np.asarray(e, dtype=np.float64),
        np.asarray(ev, dtype=np.int64),
    )


def observe(
    clouds: PointClouds, *, threshold_mip: float = DEFAULT_THRESHOLD_MIP, geometry: Geometry | None = None
) -> PointObservables:
    """Project ``clouds`` onto the cells of ``geometry`` (default: the clouds' own) and measure them.

    Args:
        clouds: N showers as points (x, y in mm, layer index, energy in MeV).
        threshold_mip: readout threshold in units of each layer's MIP energy.
        geometry: the cells; default ``clouds.geometry``.
    """
    return observe_cells(points_to_cells(clouds, geometry, threshold_mip))


def classifier_inputs(obs: PointObservables) -> np.ndarray:
    """Per-shower inputs of the classifier test (to be standardised column by column).

    Columns: ``log10 E_inc`` (MeV), ``log10(1 + n_hits)``, ``E_vis / E_inc``, ``cog_x``, ``cog_y``,
    ``cog_z`` (mm, 0 for a shower without hits), the fraction of the visible energy in each layer,
    ``log10(1 + hits)`` of each layer and the fraction of the visible energy in each ring.

    Returns:
        (N, 6 + 2 L + R) float32.
    """
    s = obs.scalars
    total = obs.layer_energy.sum(axis=1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    cols = [
        np.log10(obs.incident_mev)[:, None],
        np.log10(1.0 + s["n_hits"])[:, None],
        s["e_vis_over_e_inc"][:, None],
        *(np.nan_to_num(s[k], nan=0.0)[:, None] for k in ("cog_x", "cog_y", "cog_z")),
        obs.layer_energy / safe,
        np.log10(1.0 + obs.layer_hits),
        obs.ring_energy / safe,
    ]
    return np.concatenate(cols, axis=1).astype(np.float32)
