"""Point-cloud shower files (hits of a highly granular calorimeter) and their conversions.

Layout (the one of the ``showerdata`` package used for CaloClouds-style samples, so its readers
open showerforge files; showerforge adds attributes):

* ``showers``: (N,) variable-length float32; event ``i`` is its points flattened row by row,
  ``num_points[i]`` rows of 4 columns: ``x`` and ``y`` in **mm** (transverse, the beam enters at
  x = y = 0), ``z`` the **readout layer index** (0 = front, integer-valued), ``energy`` in **MeV**
  (visible: energy deposited in the sensor, not divided by a sampling fraction);
* ``num_points``: (N,) int32; ``shape``: (3,) int64, (N, max points, 4);
* ``energies``: (N, 1) float64, incident energy in **MeV**; ``pdg``: (N,) int32;
  ``directions``: (N, 3) float32 unit vectors; ``shower_ids``: (N,) int32;
* attributes: ``format = "showerforge-points-v1"``, ``point_columns``, ``units``, ``geometry``
  (JSON of :class:`showerforge.geometry.Geometry`), provenance (``particle``, ``seed``,
  ``geant4_version``, ...).

Geant4 points are the non-empty squares of a grid ``subcells`` times finer than the cells
(CaloClouds clusters Geant4 steps on 5 x 5 squares per cell in each layer); a point sits at the
centre of its square. :func:`points_to_cells` projects points onto the geometry's cells and
applies the readout threshold (a fraction of the MIP energy of the layer's sensor);
:func:`points_to_voxels` onto a cylindrical CaloChallenge readout; :func:`cells_to_points` puts
one point at the centre of each non-empty cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.geometry import Geometry, GeometryError

__all__ = [
    "POINTS_FORMAT",
    "POINT_COLUMNS",
    "PointClouds",
    "CellHits",
    "PointsFileError",
    "is_points_file",
    "read_points",
    "write_points",
    "points_count",
    "fine_hits_to_points",
    "points_to_cells",
    "cells_to_points",
    "points_to_voxels",
    "DEFAULT_THRESHOLD_MIP",
]

POINTS_FORMAT = "showerforge-points-v1"
POINT_COLUMNS = ("x_mm", "y_mm", "layer", "energy_mev")
DEFAULT_THRESHOLD_MIP = 0.5
_KEYS = ("showers", "num_points", "energies")


class PointsFileError(UserError):
    """A point-cloud file is unreadable or does not follow the layout (names the file and field)."""

    def __init__(self, path: str | Path, fld: str | None, message: str) -> None:
        where = f"{path}" + (f" [{fld}]" if fld else "")
        super().__init__(f"{where}: {message}")


@dataclass
class PointClouds:
    """N showers as points, flat: the points of event ``i`` are ``points[offsets[i]:offsets[i+1]]``.

    Attributes:
        points: (M, 4) float32, columns ``POINT_COLUMNS`` (x mm, y mm, layer index, energy MeV).
        offsets: (N + 1,) int64, ``offsets[0] = 0``.
        incident_mev: (N,) float64 incident energies in MeV.
        geometry: the detector the points belong to (None when unknown).
        pdg: (N,) int32 PDG codes of the incident particles.
        directions: (N, 3) float32 incident directions.
        attrs: file attributes (provenance).
    """

    points: np.ndarray
    offsets: np.ndarray
    incident_mev: np.ndarray
    geometry: Geometry | None = None
    pdg: Any = None  # (N,) int32 after __post_init__
    directions: Any = None  # (N, 3) float32 after __post_init__
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 4)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.incident_mev = np.asarray(self.incident_mev, dtype=np.float64).reshape(-1)
        n = len(self.incident_mev)
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0 or self.offsets[-1] != len(self.points):
            raise ValueError(f"offsets must have N + 1 = {n + 1} entries from 0 to {len(self.points)}")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must not decrease")
        self.pdg = np.zeros(n, np.int32) if self.pdg is None else np.asarray(self.pdg, np.int32).reshape(-1)
        if self.directions is None:
            self.directions = np.tile(np.asarray([0.0, 0.0, 1.0], np.float32), (n, 1))
        self.directions = np.asarray(self.directions, np.float32).reshape(n, 3)

    def __len__(self) -> int:
        return len(self.incident_mev)

    @property
    def num_points(self) -> np.ndarray:
        """Points per event, (N,) int64."""
        return np.diff(self.offsets)

    def event_index(self) -> np.ndarray:
        """Event number of each point, (M,) int64."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.num_points)

    def event(self, i: int) -> np.ndarray:
        """The (n_i, 4) points of event ``i``."""
        return self.points[self.offsets[i] : self.offsets[i + 1]]

    def select(self, index: np.ndarray | slice) -> PointClouds:
        """The events ``index`` (a slice or integer array), in that order."""
        idx = np.arange(len(self))[index]
        counts = self.num_points[idx]
        starts = self.offsets[idx]
        take = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        return PointClouds(
            self.points[take],
            np.concatenate([[0], np.cumsum(counts)]),
            self.incident_mev[idx],
            self.geometry,
            self.pdg[idx],
            self.directions[idx],
            dict(self.attrs),
        )

    def visible_mev(self) -> np.ndarray:
        """Sum of point energies per event (MeV), (N,) float64."""
        return np.bincount(self.event_index(), weights=self.points[:, 3].astype(np.float64), minlength=len(self))


@dataclass
class CellHits:
    """Cells above threshold of N showers, flat and sorted by (event, layer, cell).

    Attributes:
        event, layer, cell: (K,) int64: event number, readout layer, voxel column in the
            geometry's ``showers`` order (row-major in the layer: row * n + column, plus the
            layer's offset).
        x_mm, y_mm: (K,) float64 cell centres; energy_mev: (K,) float64 cell energies (visible).
        incident_mev: (N,) float64.
        geometry: the geometry of the cells.
        threshold_mev: (L,) float64 threshold applied in each layer (0 = none).
    """

    event: np.ndarray
    layer: np.ndarray
    cell: np.ndarray
    x_mm: np.ndarray
    y_mm: np.ndarray
    energy_mev: np.ndarray
    incident_mev: np.ndarray
    geometry: Geometry
    threshold_mev: np.ndarray

    def __len__(self) -> int:
        return len(self.incident_mev)

    def centre_of_gravity(self) -> np.ndarray:
        """(N, 2) energy-weighted x, y (mm) of each shower's cell centres (NaN for a shower without cells)."""
        n = len(self)
        totals = np.bincount(self.event, weights=self.energy_mev, minlength=n)
        sums = [np.bincount(self.event, weights=self.energy_mev * v, minlength=n) for v in (self.x_mm, self.y_mm)]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([np.where(totals > 0, s / np.where(totals > 0, totals, 1.0), np.nan) for s in sums], 1)

    def dense(self, dtype: Any = np.float32) -> np.ndarray:
        """(N, n_voxels) array of cell energies in the geometry's voxel order."""
        out = np.zeros((len(self), self.geometry.n_voxels), dtype=dtype)
        out[self.event, self.cell] = self.energy_mev
        return out


def _layer_of_points(points: np.ndarray, geometry: Geometry, where: str) -> np.ndarray:
    layer = points[:, 2]
    li = np.rint(layer).astype(np.int64)
    if len(li) and (np.any(np.abs(layer - li) > 1e-3) or li.min() < 0 or li.max() >= geometry.n_layers):
        raise PointsFileError(
            where,
            "showers",
            f"column z must hold readout layer indices 0..{geometry.n_layers - 1} of geometry {geometry.name!r}, "
            f"found values {float(layer.min()):g}..{float(layer.max()):g}",
        )
    return li


def fine_hits_to_points(
    geometry: Geometry, layer: np.ndarray, row: np.ndarray, col: np.ndarray, energy_mev: np.ndarray
) -> np.ndarray:
    """(M, 4) float32 points at the centres of the fine squares (``layer``, ``row``, ``col``) of ``geometry``."""
    layer = np.asarray(layer, np.int64)
    fine_n = np.asarray([lay.fine_n for lay in geometry.readout], np.float64)[layer]
    fine_mm = np.asarray([lay.fine_mm for lay in geometry.readout], np.float64)[layer]
    out = np.empty((len(layer), 4), np.float32)
    out[:, 0] = (np.asarray(col, np.float64) + 0.5 - 0.5 * fine_n) * fine_mm
    out[:, 1] = (np.asarray(row, np.float64) + 0.5 - 0.5 * fine_n) * fine_mm
    out[:, 2] = layer
    out[:, 3] = energy_mev
    return out


def _require_cells(geometry: Geometry, what: str) -> None:
    if not geometry.is_crystal:
        raise GeometryError(
            f"geometry {geometry.name!r} has a cylindrical readout; {what} needs square cells "
            "(ild-ecal, ild-hcal, ild-ecal-hcal, pbwo4 or a JSON geometry with crystal_mm / n_crystals)"
        )


def threshold_per_layer(geometry: Geometry, threshold_mip: float) -> np.ndarray:
    """Readout threshold (MeV) of each layer: ``threshold_mip`` x the layer's MIP energy (0 where none)."""
    if not threshold_mip >= 0:
        raise UserError(f"threshold must be >= 0 MIP, got {threshold_mip}")
    mip = geometry.layer_mip_mev() if geometry.has_stack else np.full(geometry.n_layers, np.nan)
    return np.where(np.isfinite(mip), float(threshold_mip) * np.nan_to_num(mip), 0.0)


def cell_tables(geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per layer of a cell-matrix ``geometry``: cells per side, cell width (mm) and the index of the
    layer's first cell (for :func:`cell_keys` on many small batches)."""
    side = np.asarray([lay.n_crystals for lay in geometry.readout], np.int64)
    width = np.asarray([lay.crystal_mm for lay in geometry.readout], np.float64)
    return side, width, np.asarray(geometry.layer_offsets, np.int64)[: len(side)]


def cell_keys(
    points: np.ndarray, geometry: Geometry | None, tables: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """(M,) the readout cell (index among the geometry's cells) of each point (x, y mm; layer index
    in column 2, rounded); -1 beyond the cell matrix. ``tables``: :func:`cell_tables` of the
    geometry, if at hand (then ``geometry`` may be ``None``)."""
    if tables is None:
        if geometry is None:
            raise ValueError("cell_keys needs a geometry or its cell_tables")
        tables = cell_tables(geometry)
    side_of, width_of, offset_of = tables
    p = np.asarray(points)
    layer = np.clip(np.rint(p[:, 2]).astype(np.int64), 0, len(side_of) - 1)
    n_side, width = side_of[layer], width_of[layer]
    col = np.floor(p[:, 0].astype(np.float64) / width + 0.5 * n_side).astype(np.int64)
    row = np.floor(p[:, 1].astype(np.float64) / width + 0.5 * n_side).astype(np.int64)
    inside = (col >= 0) & (col < n_side) & (row >= 0) & (row < n_side)
    return np.where(inside, offset_of[layer] + row * n_side + col, -1)


def points_to_cells(
    clouds: PointClouds, geometry: Geometry | None = None, threshold_mip: float = DEFAULT_THRESHOLD_MIP, where: str = ""
) -> CellHits:
    """Project points onto the cells of ``geometry`` (default: the clouds' own) and apply the threshold.

    A point belongs to the cell containing (x, y) in its layer; points outside the cell matrix are
    dropped. Cells whose summed energy is below ``threshold_mip`` x MIP of their layer are removed.
    """
    geo = geometry or clouds.geometry
    if geo is None:
        raise PointsFileError(where or "points", None, "no geometry: give one (--geometry)")
    _require_cells(geo, "projecting points onto cells")
    pts = clouds.points
    _layer_of_points(pts, geo, where or "points")  # refuses depths that are not layer indices
    cells = cell_keys(pts, geo)
    inside = cells >= 0
    ev = clouds.event_index()[inside]
    key = ev * geo.n_voxels + cells[inside]
    uniq, inverse = np.unique(key, return_inverse=True)
    energy = np.bincount(inverse, weights=pts[inside, 3].astype(np.float64), minlength=len(uniq))
    ev_u, cell_u = uniq // geo.n_voxels, uniq % geo.n_voxels
    layer_u = np.searchsorted(geo.layer_offsets, cell_u, side="right") - 1
    thr = threshold_per_layer(geo, threshold_mip)
    keep = (energy >= thr[layer_u]) & (energy > 0)
    ev_u, cell_u, layer_u, energy = ev_u[keep], cell_u[keep], layer_u[keep], energy[keep]
    x_all, y_all = geo.voxel_xy_mm()
    return CellHits(ev_u, layer_u, cell_u, x_all[cell_u], y_all[cell_u], energy, clouds.incident_mev, geo, thr)


def cells_to_points(showers_mev: np.ndarray, incident_mev: np.ndarray, geometry: Geometry) -> PointClouds:
    """One point per non-zero cell, at the cell centre, in the geometry's layer: (N, n_voxels) -> points."""
    _require_cells(geometry, "cells to points")
    sh = np.asarray(showers_mev)
    if sh.ndim != 2 or sh.shape[1] != geometry.n_voxels:
        raise GeometryError(f"showers have shape {sh.shape}; geometry {geometry.name!r} has {geometry.n_voxels} cells")
    ev, cell = np.nonzero(sh)
    x, y = geometry.voxel_xy_mm()
    layer = geometry.voxel_layer()
    pts = np.stack([x[cell], y[cell], layer[cell], sh[ev, cell]], axis=1).astype(np.float32)
    counts = np.bincount(ev, minlength=len(sh))
    return PointClouds(pts, np.concatenate([[0], np.cumsum(counts)]), incident_mev, geometry)


def points_to_voxels(clouds: PointClouds, target: Geometry, where: str = "") -> np.ndarray:
    """Project points onto a cylindrical CaloChallenge readout ``target`` (same number of layers).

    Returns (N, target.n_voxels) float32 visible energies in MeV (points beyond the last radial
    edge are dropped; no threshold).
    """
    if target.is_crystal:
        raise GeometryError(f"geometry {target.name!r} is a cell matrix; points_to_voxels needs a cylindrical readout")
    src_layers = clouds.geometry.n_layers if clouds.geometry is not None else None
    if src_layers is not None and src_layers != target.n_layers:
        raise GeometryError(
            f"the points have {src_layers} layers but geometry {target.name!r} has {target.n_layers}: "
            "a voxel readout keeps the layers"
        )
    pts = clouds.points
    li = _layer_of_points(pts, target, where or "points")
    x, y = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    r, a = np.hypot(x, y), np.arctan2(y, x)
    ev = clouds.event_index()
    out = np.zeros((len(clouds), target.n_voxels), np.float64)
    for layer_i, lay in enumerate(target.readout):
        sel = np.nonzero(li == layer_i)[0]
        if lay.n_voxels == 0 or not len(sel):
            continue
        edges = np.asarray(lay.r_edges_mm)
        ri = np.searchsorted(edges, r[sel], side="right") - 1
        ai = np.floor((a[sel] + np.pi) / (2 * np.pi) * lay.n_alpha).astype(np.int64) % lay.n_alpha
        ok = (ri >= 0) & (ri < lay.n_radial)
        col = target.layer_offsets[layer_i] + ai[ok] * lay.n_radial + ri[ok]
        np.add.at(out, (ev[sel][ok], col), pts[sel[ok], 3].astype(np.float64))
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- files
def is_points_file(keys: Any) -> bool:
    """True for the keys of a point-cloud file."""
    return all(k in keys for k in _KEYS)


def _attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return "none" if value is None else value


class PointsWriter:
    """Write a points file in pieces (atomically on close): ``with PointsWriter(path, n, geo, attrs) as w: w.add(c)``."""

    def __init__(self, path: str | Path, n: int, geometry: Geometry | None, attrs: dict[str, Any] | None = None):
        self.path, self.n, self.geometry, self.attrs = Path(path), int(n), geometry, dict(attrs or {})
        self.row, self.max_points = 0, 0

    def __enter__(self) -> PointsWriter:
        self._ctx = atomic_output(self.path)
        tmp = self._ctx.__enter__()
        f = self.f = h5py.File(tmp, "w")
        n = self.n
        self.ds = {
            "showers": f.create_dataset("showers", shape=(n,), dtype=h5py.vlen_dtype(np.float32)),
            "num_points": f.create_dataset("num_points", shape=(n,), dtype=np.int32),
            "energies": f.create_dataset("energies", shape=(n, 1), dtype=np.float64),
            "pdg": f.create_dataset("pdg", shape=(n,), dtype=np.int32),
            "directions": f.create_dataset("directions", shape=(n, 3), dtype=np.float32),
            "shower_ids": f.create_dataset("shower_ids", data=np.arange(n, dtype=np.int32)),
        }
        return self

    def add(self, clouds: PointClouds, extras: dict[str, np.ndarray] | None = None) -> None:
        """Append ``clouds``; ``extras``: per-shower arrays (first axis = showers) stored under ``showerforge/``."""
        k, r = len(clouds), self.row
        for name, value in (extras or {}).items():
            value = np.asarray(value)
            key = f"showerforge/{name}"
            if key not in self.f:
                self.f.create_dataset(key, shape=(self.n, *value.shape[1:]), dtype=value.dtype, compression="gzip")
            self.f[key][r : r + k] = value
        if r + k > self.n:
            raise ValueError(f"more events than announced ({self.n})")
        flat = np.empty(k, dtype=object)
        for i in range(k):
            flat[i] = clouds.event(i).reshape(-1)
        if k > 1 and len(set(clouds.num_points.tolist())) == 1:
            # showers of equal length: h5py would read the object array as one 2-D block
            for i in range(k):
                self.ds["showers"][r + i] = flat[i]
        elif k:
            self.ds["showers"][r : r + k] = flat
        self.ds["num_points"][r : r + k] = clouds.num_points
        self.ds["energies"][r : r + k, 0] = clouds.incident_mev
        self.ds["pdg"][r : r + k] = clouds.pdg
        self.ds["directions"][r : r + k] = clouds.directions
        self.max_points = max(self.max_points, int(clouds.num_points.max()) if k else 0)
        self.row += k

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                if self.row != self.n:
                    raise ValueError(f"{self.row} events written, {self.n} announced")
                from showerforge._version import __version__

                f = self.f
                f.create_dataset("shape", data=np.asarray([self.n, self.max_points, 4], np.int64))
                for key, value in self.attrs.items():
                    f.attrs[key] = _attr(value)
                f.attrs["point_columns"] = json.dumps(list(POINT_COLUMNS))
                f.attrs["units"] = json.dumps(
                    {"x": "mm", "y": "mm", "z": "layer index", "energy": "MeV", "energies": "MeV"}
                )
                if self.geometry is not None:
                    f.attrs["geometry"] = self.geometry.to_json()
                f.attrs["format"] = POINTS_FORMAT
                f.attrs["showerforge_version"] = __version__
        finally:
            self.f.close()
            self._ctx.__exit__(*exc)


def write_points(path: str | Path, clouds: PointClouds, attrs: dict[str, Any] | None = None) -> Path:
    """Write ``clouds`` to ``path`` (atomically) in the layout of the module docstring."""
    merged = {**clouds.attrs, **(attrs or {})}
    merged.pop("geometry", None)
    with PointsWriter(path, len(clouds), clouds.geometry, merged) as w:
        w.add(clouds)
    return Path(path)


def _open(path: str | Path) -> h5py.File:
    p = Path(path)
    if not p.is_file():
        raise PointsFileError(p, None, "file not found" if not p.exists() else "not a file")
    try:
        return h5py.File(p, "r")
    except OSError as err:
        raise PointsFileError(p, None, f"not a readable HDF5 file ({err})") from None


def points_count(path: str | Path) -> int:
    """Number of showers in a points file."""
    with _open(path) as f:
        if not is_points_file(f.keys()):
            raise PointsFileError(path, None, f"not a point-cloud file: expected datasets {', '.join(_KEYS)}")
        return int(f["num_points"].shape[0])


def read_points(path: str | Path, max_events: int | None = None, *, start: int = 0, check: bool = True) -> PointClouds:
    """Read a points file: ``max_events`` showers (default all) from shower ``start`` on.

    Raises:
        PointsFileError: missing fields, wrong shapes, NaN/inf or negative energies, layers or
            points outside the file's geometry.
    """
    with _open(path) as f:
        keys = set(f.keys())
        missing = [k for k in _KEYS if k not in keys]
        if missing:
            hint = " (a voxel file: CaloChallenge showers/incident_energies)" if "incident_energies" in keys else ""
            raise PointsFileError(path, missing[0], f"missing; a point-cloud file has {', '.join(_KEYS)}{hint}")
        sh = f["showers"]
        if sh.ndim != 1 or h5py.check_vlen_dtype(sh.dtype) is None:
            raise PointsFileError(
                path, "showers", f"expected (N,) variable-length float32 points, found {sh.dtype} {sh.shape}"
            )
        lo = min(int(start), sh.shape[0])
        hi = sh.shape[0] if max_events is None else min(lo + int(max_events), sh.shape[0])
        n = hi - lo
        num = f["num_points"][lo:hi].astype(np.int64)
        energies = f["energies"][lo:hi]
        if energies.ndim != 2 or energies.shape[1:] != (1,) or f["energies"].shape[0] != sh.shape[0]:
            raise PointsFileError(path, "energies", f"expected ({sh.shape[0]}, 1), found {f['energies'].shape}")
        rows = sh[lo:hi] if n else []
        pieces = [np.asarray(r, np.float32) for r in rows]
        sizes = np.asarray([len(p) for p in pieces], np.int64)
        if np.any(sizes != 4 * num):
            bad = int(np.nonzero(sizes != 4 * num)[0][0])
            raise PointsFileError(
                path, "showers", f"shower {bad} has {sizes[bad]} values, expected 4 x num_points = {4 * num[bad]}"
            )
        pts = np.concatenate(pieces).reshape(-1, 4) if pieces else np.zeros((0, 4), np.float32)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        pdg = f["pdg"][lo:hi] if "pdg" in keys else None
        dirs = f["directions"][lo:hi] if "directions" in keys else None
    geo = None
    if "geometry" in attrs:
        try:
            geo = Geometry.from_json(str(attrs["geometry"]))
        except GeometryError as err:
            raise PointsFileError(path, "geometry", str(err)) from None
    clouds = PointClouds(pts, np.concatenate([[0], np.cumsum(num)]), energies[:, 0], geo, pdg, dirs, attrs)
    if check:
        check_points(clouds, path)
    return clouds


def check_points(clouds: PointClouds, where: str | Path) -> None:
    """Refuse NaN/inf values, negative energies, non-positive incident energies and bad layers (one line)."""
    pts = clouds.points
    if not np.all(np.isfinite(pts)):
        i = int(np.nonzero(~np.all(np.isfinite(pts), axis=1))[0][0])
        ev = int(np.searchsorted(clouds.offsets, i, side="right") - 1)
        raise PointsFileError(where, "showers", f"shower {ev} has a NaN or infinite value; expected finite points")
    if len(pts) and pts[:, 3].min() < 0:
        ev = int(np.searchsorted(clouds.offsets, int(np.argmin(pts[:, 3])), side="right") - 1)
        raise PointsFileError(where, "showers", f"shower {ev} has a negative energy; expected energies >= 0 MeV")
    inc = clouds.incident_mev
    if len(inc) and not (np.all(np.isfinite(inc)) and inc.min() > 0):
        raise PointsFileError(where, "energies", "expected finite incident energies > 0 MeV")
    if clouds.geometry is not None:
        _layer_of_points(pts, clouds.geometry, str(where))
