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
        return adapter(self.kind).length(self)

    def describe(self) -> str:
        """``showers (geometry ds2)`` or ``jets``, for messages."""
        return adapter(self.kind).describe(self)

    @property
    def n_particles(self) -> int:
        """Constituent slots of jets (0 for showers)."""
        return adapter(self.kind).n_particles(self)


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
    return adapter(events.kind).block_values(events, block)


def conditions(events: Events) -> np.ndarray:
    """Conditioning columns: log(E_inc / 1 GeV) for showers, the jet type one-hot for jets."""
    return adapter(events.kind).conditions(events)


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
    adapter(kind).check_readout(events, geometry, n_particles, against, error)


class _Showers:
    """What refine does with showers (``Events.kind == "showers"``)."""

    def length(self, ev: Events) -> int:
        assert ev.showers is not None
        return int(ev.showers.shape[0])

    def describe(self, ev: Events) -> str:
        assert ev.geometry is not None
        return f"showers (geometry {ev.geometry.name})"

    def n_particles(self, ev: Events) -> int:
        return 0

    def block_values(self, ev: Events, block: str) -> np.ndarray:
        assert ev.showers is not None and ev.geometry is not None and ev.incident_mev is not None
        if block == "shapes":
            return shower_shapes(ev.incident_mev, ev.showers, ev.geometry)
        if block == "layers":
            return layer_energies(ev.showers, ev.geometry)
        if block == "voxels":
            return np.asarray(ev.showers, dtype=np.float64)
        raise RefineInputError(f"{ev.path}: {block!r} is not an input of showers")

    def conditions(self, ev: Events) -> np.ndarray:
        assert ev.incident_mev is not None
        return np.log(ev.incident_mev / 1e3).reshape(-1, 1)

    def check_readout(
        self, ev: Events, geometry: Geometry | None, n_particles: int, against: str, error: type[UserError]
    ) -> None:
        assert ev.geometry is not None and geometry is not None
        if not ev.geometry.same_readout(geometry):
            raise error(
                f"{ev.path} [geometry]: read out as {ev.geometry.name!r} ({ev.geometry.n_voxels} voxels) "
                f"but {against} as {geometry.name!r} ({geometry.n_voxels} voxels); expected the same geometry"
            )

    def check_conditions_covered(self, c_source: np.ndarray, c_target: np.ndarray, target: Events) -> None:
        pass

    def outside(self, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, ev: Events) -> str | None:
        outside = (c[:, 0] < lo[0] - 0.01) | (c[:, 0] > hi[0] + 0.01)
        if not outside.any():
            return None
        return (
            f"{ev.path}: {int(outside.sum())} of {len(c)} events have incident energies outside the refiner's "
            f"fitted range {np.exp(lo[0]):.4g}-{np.exp(hi[0]):.4g} GeV; it extrapolates there"
        )

    def refined(self, ev: Events, block: str, values: np.ndarray) -> dict[str, np.ndarray]:
        """Refined showers: voxels as they come, layers as one factor per layer on its voxels."""
        if block == "voxels":
            return {"showers": values.astype(np.float32)}
        if block == "layers":
            assert ev.geometry is not None and ev.showers is not None
            old = layer_energies(ev.showers, ev.geometry)
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(old > 0, values / old, 0.0)
            showers = np.array(ev.showers, dtype=np.float64)
            for layer in range(ev.geometry.n_layers):
                showers[:, ev.geometry.layer_slice(layer)] *= factor[:, layer : layer + 1]
            return {"showers": showers.astype(np.float32), "refined_inputs": values}
        return {"refined_inputs": values}

    def write(self, path: Path, ev: Events, result: dict[str, Any], attrs: dict[str, Any]) -> None:
        from showerforge.data.calo import write_showers

        assert ev.geometry is not None and ev.incident_mev is not None and ev.showers is not None
        write_showers(path, ev.incident_mev, result.get("showers", ev.showers), ev.geometry, attrs)


class _Jets:
    """What refine does with jets (``Events.kind == "jets"``)."""

    def length(self, ev: Events) -> int:
        return len(ev.jets)

    def describe(self, ev: Events) -> str:
        return "jets"

    def n_particles(self, ev: Events) -> int:
        return int(ev.jets.n_particles)

    def block_values(self, ev: Events, block: str) -> np.ndarray:
        if block == "jet":
            return np.asarray(ev.jets.jet_features[:, :3], dtype=np.float64)
        if block == "particles":
            pf = np.asarray(ev.jets.particle_features[:, :, :3], dtype=np.float64)
            return pf.reshape(len(pf), -1)
        raise RefineInputError(f"{ev.path}: {block!r} is not an input of jets")

    def conditions(self, ev: Events) -> np.ndarray:
        from showerforge.data.jetnet import JET_TYPES

        return np.eye(len(JET_TYPES))[np.asarray(ev.jets.jet_type, dtype=np.int64)]

    def check_readout(
        self, ev: Events, geometry: Geometry | None, n_particles: int, against: str, error: type[UserError]
    ) -> None:
        if ev.jets.n_particles != n_particles:
            raise error(
                f"{ev.path} [particle_features]: {ev.jets.n_particles} constituent slots but {against} has "
                f"{n_particles}; expected the same"
            )

    def check_conditions_covered(self, c_source: np.ndarray, c_target: np.ndarray, target: Events) -> None:
        missing = sorted(set(np.flatnonzero(c_source.sum(axis=0))) - set(np.flatnonzero(c_target.sum(axis=0))))
        if missing:
            from showerforge.data.jetnet import JET_TYPES

            raise RefineInputError(
                f"{target.path} [jet_type]: the source has jets of type {', '.join(JET_TYPES[i] for i in missing)} "
                "that the target lacks; select matching types with FILE:TYPE"
            )

    def outside(self, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, ev: Events) -> str | None:
        unseen = (c[:, hi < 0.5].sum(axis=1) > 0) if (hi < 0.5).any() else np.zeros(len(c), bool)
        if not unseen.any():
            return None
        return (
            f"{ev.path}: {int(unseen.sum())} of {len(c)} jets are of a type the refiner was not fitted on; "
            "it extrapolates there"
        )

    def refined(self, ev: Events, block: str, values: np.ndarray) -> dict[str, np.ndarray]:
        return {"refined_inputs": values}

    def write(self, path: Path, ev: Events, result: dict[str, Any], attrs: dict[str, Any]) -> None:
        from showerforge.data.jetnet import write_jets

        write_jets(path, ev.jets, {k: v for k, v in attrs.items() if k not in ("jet_types", "settings", "seeds")})


_ADAPTERS: dict[str, Any] = {"showers": _Showers(), "jets": _Jets()}


def adapter(kind: str) -> Any:
    """What refine does with events of one of its kinds (``showers``, ``jets``)."""
    try:
        return _ADAPTERS[kind]
    except KeyError:
        raise RefineInputError(f"refine has no events of kind {kind!r}; it takes {' or '.join(_ADAPTERS)}") from None


def check_pair(source: Events, target: Events) -> None:
    """Source and target must hold the same kind of events on the same readout."""
    check_compatible(target, source.kind, source.geometry, source.n_particles, f"source {source.path}")
