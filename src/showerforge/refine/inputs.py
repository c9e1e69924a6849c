"""What a refiner corrects: events read from a file and the input blocks computed from them.

A shower file (CaloChallenge layout) or a jet file (JetNet layout) is read whole into
:class:`Events`. A refiner works on one or more *input blocks*:

==========  =======  ============================================================================
block       kind     columns
==========  =======  ============================================================================
``shapes``  showers  seven shower-shape variables (below), the photon-identification style inputs
``layers``  showers  energy of each readout layer, MeV
``voxels``  showers  every voxel, MeV
``jet``     jets     jet pT (GeV), eta, mass (GeV)
``particles`` jets   (eta_rel, phi_rel, pT_rel) of every constituent slot (zero-padded)
==========  =======  ============================================================================

Shower shapes (all layers summed unless said otherwise; ``E`` the shower's total energy):

* ``etot_over_einc``: E / E_inc;
* ``core_fraction``: energy of the middle crystal (a crystal matrix) or of the innermost radial
  bin (a cylindrical readout) over E; the analogue of E1/E25;
* ``inner_fraction``: energy of the 3 x 3 crystals around the middle one, or inside the second
  radial edge, over E; the analogue of R9 = E3x3 / E_SC;
* ``sigma_x_mm``, ``sigma_y_mm``: energy-weighted transverse widths (linear weights, mm), the
  analogue of sigma_ieta_ieta;
* ``depth_mean``, ``depth_width``: energy-weighted mean and spread of the layer index.

Conditioning: showers are conditioned on log E_inc; jets on their type (one-hot over
:data:`~showerforge.data.jetnet.JET_TYPES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.geometry import Geometry

__all__ = [
    "BLOCKS",
    "SHAPE_NAMES",
    "Events",
    "RefineInputError",
    "load_events",
    "block_columns",
    "block_values",
    "conditions",
    "shower_shapes",
]

SHOWER_BLOCKS = ("shapes", "layers", "voxels")
JET_BLOCKS = ("jet", "particles")
BLOCKS: dict[str, tuple[str, ...]] = {"showers": SHOWER_BLOCKS, "jets": JET_BLOCKS}
SHAPE_NAMES = (
    "etot_over_einc",
    "core_fraction",
    "inner_fraction",
    "sigma_x_mm",
    "sigma_y_mm",
    "depth_mean",
    "depth_width",
)
_EPS = 1e-12


class RefineInputError(UserError):
    """Source, target or input files that a refiner cannot use; the message names the file."""


@dataclass
class Events:
    """Events of one file.

    Attributes:
        kind: ``"showers"`` or ``"jets"``.
        path: the file (for messages).
        incident_mev: (N,) incident energies in MeV (showers).
        showers: (N, n_voxels) float32 voxel energies in MeV (showers).
        geometry: the readout (showers).
        jets: the :class:`~showerforge.data.jetnet.JetData` (jets).
        attrs: file attributes.
    """

    kind: str
    path: str
    incident_mev: np.ndarray | None = None
    showers: np.ndarray | None = None
    geometry: Geometry | None = None
    jets: Any = None
    attrs: dict[str, Any] | None = None

    def __len__(self) -> int:
        if self.kind == "showers":
            assert self.showers is not None
            return int(self.showers.shape[0])
        return len(self.jets)

    def describe(self) -> str:
        """``showers (geometry ds2)`` or ``jets``, for messages."""
        if self.kind == "showers":
            assert self.geometry is not None
            return f"showers (geometry {self.geometry.name})"
        return "jets"


def load_events(path: str | Path, role: str = "input") -> Events:
    """Read a whole shower or jet file, checking it first.

    Args:
        path: a CaloChallenge-format shower file or a JetNet-format jet file (``FILE:TYPE``
            selects one jet type).
        role: ``source``, ``target`` or ``input``, for messages.

    Raises:
        RefineInputError / CaloFileError / JetFileError: one line naming the file and the problem.
    """
    from showerforge.kinds import kind_of_file

    spec = str(path)
    if Path(spec).is_dir():
        raise RefineInputError(f"{spec}: {role} is a directory; expected a shower or jet HDF5 file")
    try:
        kind = kind_of_file(spec)
    except FileNotFoundError:
        raise RefineInputError(f"{spec}: {role} file not found") from None
    reader = _READERS.get(kind.name)
    if reader is None:
        raise RefineInputError(f"{spec}: {role} holds {kind.name} data; refine takes {' or '.join(_READERS)} files")
    return reader(spec, role)


def _read_showers(spec: str, role: str) -> Events:
    from showerforge.data.calo import open_showers, require_clean

    require_clean(spec, role=role)
    with open_showers(spec) as f:
        inc, showers = f.read()
        geometry, attrs = f.geometry, dict(f.attrs)
    inc = np.asarray(inc, dtype=np.float64).reshape(-1)
    if np.any(inc <= 0):
        raise RefineInputError(f"{spec} [incident_energies]: {role} needs incident energies > 0 MeV")
    return Events(
        "showers", spec, incident_mev=inc, showers=np.asarray(showers, np.float32), geometry=geometry, attrs=attrs
    )


def _read_jets(spec: str, role: str) -> Events:
    from showerforge.data.jetnet import read_jets

    jets = read_jets(spec)
    if len(jets) == 0:
        which = f" of type {jets.selected_type!r}" if jets.selected_type else ""
        raise RefineInputError(f"{spec} [jet_type]: {role} file holds no jets{which}; expected at least 20")
    pf = jets.particle_features
    if not np.all(np.isfinite(pf)) or not np.all(np.isfinite(jets.jet_features)):
        raise RefineInputError(f"{spec} [particle_features]: {role} holds NaN or infinite values; expected finite jets")
    return Events("jets", spec, jets=jets, attrs=dict(jets.attrs))


_READERS: dict[str, Callable[[str, str], Events]] = {"calo-voxels": _read_showers, "jet-set": _read_jets}
"""Refine's event containers by kind of data (``showers`` / ``jets`` inside refine)."""


def check_blocks(kind: str, blocks: list[str] | tuple[str, ...], where: str = "--inputs") -> list[str]:
    """The blocks, checked against the kind of data."""
    allowed = BLOCKS[kind]
    out = []
    for b in blocks:
        b = str(b).strip()
        if b not in allowed:
            raise RefineInputError(f"{where}: {b!r} is not an input of {kind}; expected one of {', '.join(allowed)}")
        if b not in out:
            out.append(b)
    if not out:
        raise RefineInputError(f"{where}: give at least one input block ({', '.join(allowed)})")
    return out


def block_columns(kind: str, block: str, geometry: Geometry | None, n_particles: int = 0) -> list[str]:
    """Names of the columns of one block."""
    if block == "shapes":
        return list(SHAPE_NAMES)
    if block == "layers":
        assert geometry is not None
        return [f"layer_energy_{i}" for i in range(geometry.n_layers)]
    if block == "voxels":
        assert geometry is not None
        return [f"voxel_{i}" for i in range(geometry.n_voxels)]
    if block == "jet":
        return ["pt", "eta", "mass"]
    if block == "particles":
        return [f"{v}_{i}" for i in range(n_particles) for v in ("eta_rel", "phi_rel", "pt_rel")]
    raise RefineInputError(f"unknown input block {block!r}")


def shower_shapes(incident_mev: np.ndarray, showers_mev: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The seven shower shapes of :data:`SHAPE_NAMES`, shape (N, 7), float64 (see module docstring)."""
    x = np.clip(np.asarray(showers_mev, dtype=np.float64), 0.0, None)
    inc = np.asarray(incident_mev, dtype=np.float64).reshape(-1)
    n = x.shape[0]
    etot = x.sum(axis=1)
    norm = etot + _EPS
    vx, vy = geometry.voxel_xy_mm()
    vr = geometry.voxel_r_mm()
    if geometry.is_crystal:
        w = geometry.readout[0].crystal_mm
        core = np.hypot(vx, vy) < 0.5 * w
        inner = (np.abs(vx) < 1.5 * w) & (np.abs(vy) < 1.5 * w)
    else:
        edges = geometry.readout[0].r_edges_mm
        core = vr < edges[min(1, len(edges) - 1)]
        inner = vr < edges[min(2, len(edges) - 1)]
    layer = geometry.voxel_layer().astype(np.float64)
    out = np.empty((n, len(SHAPE_NAMES)))
    out[:, 0] = etot / inc
    out[:, 1] = x[:, core].sum(axis=1) / norm
    out[:, 2] = x[:, inner].sum(axis=1) / norm
    for col, coord in ((3, vx), (4, vy), (5, layer)):
        mean = (x @ coord) / norm
        second = (x @ (coord * coord)) / norm
        width = np.sqrt(np.clip(second - mean * mean, 0.0, None))
        if col == 5:
            out[:, 5], out[:, 6] = mean, width
        else:
            out[:, col] = width
    return out


def layer_energies(showers_mev: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Energy of each readout layer, MeV, shape (N, n_layers)."""
    x = np.asarray(showers_mev, dtype=np.float64)
    return np.stack([x[:, geometry.layer_slice(i)].sum(axis=1) for i in range(geometry.n_layers)], axis=1)


def block_values(events: Events, block: str) -> np.ndarray:
    """Values of one block in physical units, shape (N, columns), float64."""
    if events.kind == "showers":
        assert events.showers is not None and events.geometry is not None and events.incident_mev is not None
        if block == "shapes":
            return shower_shapes(events.incident_mev, events.showers, events.geometry)
        if block == "layers":
            return layer_energies(events.showers, events.geometry)
        if block == "voxels":
            return np.asarray(events.showers, dtype=np.float64)
    else:
        jets = events.jets
        if block == "jet":
            return np.asarray(jets.jet_features[:, :3], dtype=np.float64)
        if block == "particles":
            pf = np.asarray(jets.particle_features[:, :, :3], dtype=np.float64)
            return pf.reshape(len(pf), -1)
    raise RefineInputError(f"{events.path}: {block!r} is not an input of {events.kind}")


def conditions(events: Events) -> np.ndarray:
    """Conditioning columns: log(E_inc / 1 GeV) for showers, the jet type one-hot for jets."""
    if events.kind == "showers":
        assert events.incident_mev is not None
        return np.log(events.incident_mev / 1e3).reshape(-1, 1)
    from showerforge.data.jetnet import JET_TYPES

    t = np.asarray(events.jets.jet_type, dtype=np.int64)
    return np.eye(len(JET_TYPES))[t]


def check_compatible(
    events: Events,
    kind: str,
    geometry: Geometry | None,
    n_particles: int,
    against: str,
    error: type[UserError] = RefineInputError,
) -> None:
    """``events`` must be of ``kind`` on the same readout (geometry, or constituent slots) as ``against``.

    Raises:
        ``error`` naming the file, what it holds and what was expected.
    """
    if events.kind != kind:
        raise error(
            f"{events.path}: holds {events.describe()} but {against} holds {kind}; expected the same kind of events"
        )
    if kind == "showers":
        assert events.geometry is not None and geometry is not None
        if not events.geometry.same_readout(geometry):
            raise error(
                f"{events.path} [geometry]: read out as {events.geometry.name!r} ({events.geometry.n_voxels} voxels) "
                f"but {against} as {geometry.name!r} ({geometry.n_voxels} voxels); expected the same geometry"
            )
    elif events.jets.n_particles != n_particles:
        raise error(
            f"{events.path} [particle_features]: {events.jets.n_particles} constituent slots but {against} has "
            f"{n_particles}; expected the same"
        )


def check_pair(source: Events, target: Events) -> None:
    """Source and target must hold the same kind of events on the same readout."""
    n_particles = source.jets.n_particles if source.kind == "jets" else 0
    check_compatible(target, source.kind, source.geometry, n_particles, f"source {source.path}")
