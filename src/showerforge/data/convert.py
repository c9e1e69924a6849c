"""Conversions between point clouds, cells and cylindrical voxels, file to file, in pieces.

* points -> cells: :func:`showerforge.data.points.points_to_cells` (readout threshold in MIPs),
  written as a CaloChallenge-format file of the geometry's cells (visible MeV);
* points -> voxels: :func:`showerforge.data.points.points_to_voxels` onto a cylindrical readout,
  by default :func:`ds3_like` (the layers of the points, 50 angular x 18 radial bins of 2.325 mm,
  as CaloChallenge dataset 3), so the CaloChallenge metrics apply;
* cells -> points: :func:`showerforge.data.points.cells_to_points` (one point per non-empty cell).

Files are read and written ``CHUNK`` showers at a time, written atomically, and never over an input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.data.calo import open_showers, write_showers_chunks
from showerforge.data.io import check_not_input, check_writable
from showerforge.data.points import (
    DEFAULT_THRESHOLD_MIP,
    PointClouds,
    PointsFileError,
    PointsWriter,
    cells_to_points,
    is_points_file,
    points_count,
    points_to_cells,
    points_to_voxels,
    read_points,
)
from showerforge.errors import UserError
from showerforge.geometry import Geometry, GeometryError, ReadoutLayer, get_geometry

__all__ = ["CONVERSIONS", "convert_file", "ds3_like", "CHUNK"]

CHUNK = 1000
CONVERSIONS = ("cells", "voxels", "points")


def ds3_like(geometry: Geometry) -> Geometry:
    """A cylindrical readout of ``geometry``'s layers: 50 angular x 18 radial bins of 2.325 mm (CaloChallenge ds3)."""
    edges = tuple(round(2.325 * i, 6) for i in range(19))
    layers = tuple(ReadoutLayer(edges, 50) for _ in range(geometry.n_layers))
    return replace(geometry, name=f"{geometry.name}-ds3", readout=layers)


def _kind_of(path: Path) -> str:
    if not path.is_file():
        raise UserError(
            f"{path}: file not found" if not path.exists() else f"{path}: is a folder; expected an HDF5 file"
        )
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
    except OSError as err:
        raise UserError(f"{path}: not a readable HDF5 file ({str(err).splitlines()[0]})") from None
    if is_points_file(keys):
        return "points"
    if "showers" in keys and "incident_energies" in keys:
        return "cells"
    raise UserError(
        f"{path}: neither a point-cloud file (showers, num_points, energies) nor a CaloChallenge cell file "
        f"(showers, incident_energies); found keys {sorted(keys)}"
    )


def _point_chunks(path: Path, n: int) -> Iterator[PointClouds]:
    for start in range(0, n, CHUNK):
        yield read_points(path, CHUNK, start=start)


def convert_file(
    input: str | Path,  # noqa: A002
    output: str | Path,
    *,
    to: str,
    threshold_mip: float = DEFAULT_THRESHOLD_MIP,
    geometry: str | Path | Geometry | None = None,
    on_status: Any = None,
) -> Path:
    """Convert ``input`` into ``output`` (``to``: ``cells``, ``voxels`` or ``points``).

    Args:
        input: a point-cloud file (to cells or voxels) or a cell file of a cell-matrix geometry (to points).
        output: the HDF5 file to write (atomically; never an input).
        to: the target representation.
        threshold_mip: readout threshold for ``cells``, in MIPs of each layer's sensor.
        geometry: ``voxels``: the cylindrical readout (preset, JSON or CaloChallenge XML; default
            :func:`ds3_like` of the points' geometry); ``cells``: the cell geometry (default the
            points' own).

    Raises:
        UserError: unknown target, wrong kind of input, geometry mismatch, output = input (one line).
    """
    src, out = Path(input), Path(output)
    if to not in CONVERSIONS:
        raise UserError(f"--to {to!r}: expected one of {', '.join(CONVERSIONS)}")
    check_writable(out)
    check_not_input(out, src)
    have = _kind_of(src)
    say = on_status or (lambda message: None)
    if to == "points":
        if have != "cells":
            raise UserError(f"{src}: is already a point-cloud file; --to points converts a cell file")
        return _cells_to_points_file(src, out, say)
    if have != "points":
        raise UserError(
            f"{src}: is a cell/voxel file (showers, incident_energies); --to {to} converts a point-cloud file"
        )
    n = points_count(src)
    first = read_points(src, 1)
    src_geo = first.geometry
    if src_geo is None:
        raise PointsFileError(src, "geometry", "no geometry attribute; cannot place the points on a readout")
    attrs = {k: v for k, v in first.attrs.items() if k not in ("format", "geometry", "point_columns", "units", "shape")}
    attrs["converted_from"] = str(src)
    if to == "cells":
        geo = get_geometry(geometry) if geometry is not None else src_geo
        if not geo.same_readout(src_geo) and geo.n_layers != src_geo.n_layers:
            raise GeometryError(
                f"--geometry {geo.name}: {geo.n_layers} layers; the points of {src} have {src_geo.n_layers}"
            )
        attrs.update(threshold_mip=float(threshold_mip), energy_scale="visible (energy deposited in the sensors, MeV)")
        say(f"projecting {n} showers onto the {geo.n_voxels} cells of {geo.name} (threshold {threshold_mip} MIP)")

        def cells() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for chunk in _point_chunks(src, n):
                hits = points_to_cells(chunk, geo, threshold_mip=threshold_mip, where=str(src))
                yield chunk.incident_mev, hits.dense()

        attrs["threshold_mev"] = json.dumps(
            [float(t) for t in points_to_cells(first, geo, threshold_mip).threshold_mev]
        )
        return write_showers_chunks(out, n, replace(geo, sampling_fraction=1.0), cells(), attrs)
    target = ds3_like(src_geo) if geometry is None else get_geometry(geometry)
    if target.is_crystal:
        raise GeometryError(f"--geometry {target.name}: a cell matrix; --to voxels needs a cylindrical readout")
    if target.n_layers != src_geo.n_layers:
        raise GeometryError(
            f"--geometry {target.name}: {target.n_layers} layers; the points of {src} have {src_geo.n_layers}"
        )
    if target.sections != src_geo.sections and src_geo.sections:
        target = replace(target, sections=src_geo.sections)
    say(f"projecting {n} showers onto {target.describe_readout()}")

    def voxels() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for chunk in _point_chunks(src, n):
            yield chunk.incident_mev, points_to_voxels(chunk, target, where=str(src))

    attrs["energy_scale"] = "visible (energy deposited in the sensors, MeV)"
    return write_showers_chunks(out, n, replace(target, sampling_fraction=1.0), voxels(), attrs)


def _cells_to_points_file(src: Path, out: Path, say: Any) -> Path:
    with open_showers(src) as f:
        geo = f.geometry
        if not geo.is_crystal:
            raise GeometryError(
                f"{src}: geometry {geo.name!r} has a cylindrical readout; --to points needs a cell-matrix file "
                "(ild-ecal, ild-hcal, ild-ecal-hcal, pbwo4)"
            )
        n = len(f)
        attrs = {k: v for k, v in f.attrs.items() if k not in ("format", "geometry")}
        attrs["converted_from"] = str(src)
        attrs["points_from"] = "cells (one point per non-empty cell, at its centre)"
        say(f"writing {n} showers as points, one per non-empty cell")
        with PointsWriter(out, n, geo, attrs) as w:
            for start in range(0, n, CHUNK):
                stop = min(n, start + CHUNK)
                _inc32, sh = f.read(start, stop)
                inc = np.asarray(f.h5["incident_energies"][start:stop], np.float64).reshape(-1)
                w.add(cells_to_points(sh, inc, geo))
    return out
