"""Detector and readout geometry shared by the simulator, the data layer, the features and the plots.

A :class:`Geometry` describes a calorimeter and its readout:

* the physical stack: ``n_physical_layers`` repetitions of (absorber, sensor), materials named
  by their Geant4 NIST names (``G4_W``, ``G4_Si``, ...), thicknesses in **mm**; an absorber of
  0 mm makes a homogeneous calorimeter (every slab is active, e.g. ``G4_PbWO4`` crystals);
* the readout: ``readout`` layers (each groups ``n_physical_layers / n_layers`` consecutive
  physical layers), each either cylindrical (radial bin edges in mm, a number of angular bins)
  or a square matrix of crystals (``n_crystals`` x ``n_crystals`` of ``crystal_mm`` width,
  centred on the beam axis, which passes through the centre of the middle crystal).

Voxels are ordered (layer, angle, radius), radius fastest, as in the CaloChallenge 2022 files.
Angular bin ``a`` of ``n`` covers ``[-pi + 2 pi a / n, -pi + 2 pi (a + 1) / n)`` (radians).
A crystal matrix is ordered (layer, row, column), column fastest: row ``j`` covers
``y`` in ``[(j - n/2) w, (j + 1 - n/2) w)``, column ``i`` the same in ``x`` (``w`` the width);
its ``shape`` is (layers, rows, columns). A matrix layer may be divided into ``subcells`` x
``subcells`` finer squares per cell: Geant4 then scores the finer grid, whose non-empty squares
are the *points* of a point-cloud file (``simulate calo --points``); summed per cell they give
the cell readout.

A stack of several *sections* (``sections``: runs of identical layers, e.g. an ECal followed by
an HCal, or an ECal whose absorbers thicken with depth) has one readout layer per physical layer.

This module must not import torch.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.errors import UserError

__all__ = [
    "ReadoutLayer",
    "Section",
    "MIP_MPV_MEV",
    "Geometry",
    "GeometryError",
    "PRESETS",
    "get_geometry",
    "RADIATION_LENGTH_MM",
]

# Radiation lengths X0 in mm (PDG "Atomic and nuclear properties"), for the materials of the presets.
RADIATION_LENGTH_MM: dict[str, float] = {
    "G4_W": 3.504,
    "G4_Si": 93.70,
    "G4_Pb": 5.612,
    "G4_Fe": 17.57,
    "G4_Cu": 14.36,
    "G4_PbWO4": 8.903,
    "G4_lAr": 140.0,
    "G4_POLYSTYRENE": 413.1,
}
# Critical energies (MeV, PDG, electrons) for the absorbers of the presets.
CRITICAL_ENERGY_MEV: dict[str, float] = {"G4_W": 7.97, "G4_Pb": 7.43, "G4_Fe": 21.68, "G4_Cu": 19.42}


class GeometryError(UserError):
    """A geometry description is invalid or does not match a file."""


@dataclass(frozen=True)
class ReadoutLayer:
    """One readout layer: cylindrical, or a square crystal matrix.

    Args:
        r_edges_mm: radial bin edges in mm, increasing; ``len - 1`` radial bins (a single edge
            means the layer has no voxels, as in CaloChallenge dataset 1). For a crystal matrix
            it is set to ``(0, half-width of the matrix)``.
        n_alpha: number of angular bins covering (-pi, pi]; for a crystal matrix the number of rows.
        crystal_mm: width of one crystal in mm; > 0 makes the layer a crystal matrix.
        n_crystals: crystals per side of the matrix (odd, so the beam hits the middle crystal).
        subcells: finer squares per cell side that Geant4 scores for point clouds (1: none);
            only for a cell matrix.
    """

    r_edges_mm: tuple[float, ...] = ()
    n_alpha: int = 1
    crystal_mm: float = 0.0
    n_crystals: int = 0
    subcells: int = 1

    def __post_init__(self) -> None:
        if int(self.subcells) < 1 or (int(self.subcells) > 1 and not (self.crystal_mm or self.n_crystals)):
            raise GeometryError(
                f"subcells={self.subcells}: must be >= 1, and > 1 only for a square cell matrix (crystal_mm, n_crystals)"
            )
        object.__setattr__(self, "subcells", int(self.subcells))
        if self.crystal_mm or self.n_crystals:
            n, w = int(self.n_crystals), float(self.crystal_mm)
            if not (w > 0 and n >= 1 and n % 2 == 1):
                raise GeometryError(
                    f"a crystal matrix needs crystal_mm > 0 and an odd n_crystals >= 1, got {w} mm and {n}"
                )
            object.__setattr__(self, "crystal_mm", w)
            object.__setattr__(self, "n_crystals", n)
            object.__setattr__(self, "n_alpha", n)
            object.__setattr__(self, "r_edges_mm", (0.0, round(0.5 * n * w, 6)))
            return
        edges = tuple(float(e) for e in self.r_edges_mm)
        object.__setattr__(self, "r_edges_mm", edges)
        if len(edges) < 1 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0:
            raise GeometryError(f"r_edges_mm must be non-negative and increasing, got {edges}")
        if int(self.n_alpha) < 1:
            raise GeometryError(f"n_alpha must be >= 1, got {self.n_alpha}")
        object.__setattr__(self, "n_alpha", int(self.n_alpha))

    @property
    def is_crystal(self) -> bool:
        """True for a square crystal matrix."""
        return self.n_crystals > 0

    @property
    def n_radial(self) -> int:
        """Number of radial bins (columns of a crystal matrix)."""
        return self.n_crystals if self.is_crystal else len(self.r_edges_mm) - 1

    @property
    def n_voxels(self) -> int:
        """Number of voxels (angle x radius, or rows x columns) in this layer."""
        return self.n_radial * self.n_alpha if self.n_radial > 0 else 0

    def crystal_centres_mm(self) -> np.ndarray:
        """Centres (mm) of the rows / columns of a crystal matrix, shape (n_crystals,)."""
        n = self.n_crystals
        return (np.arange(n) - (n - 1) / 2.0) * self.crystal_mm

    @property
    def fine_n(self) -> int:
        """Fine squares per side of a cell matrix (``n_crystals * subcells``)."""
        return self.n_crystals * self.subcells

    @property
    def fine_mm(self) -> float:
        """Width of one fine square in mm (``crystal_mm / subcells``)."""
        return self.crystal_mm / self.subcells


# Most probable energy loss (MeV) of a minimum-ionising particle (beta gamma = 3.6) crossing one
# sensor at normal incidence: Landau-Vavilov-Bichsel, PDG Review "Passage of particles through
# matter", eq. 34.12 (j = 0.200), with the Sternheimer density-effect parameters of the PDG tables.
# Silicon 0.525 mm: xi = 0.0101 MeV, delta = 0.42 -> 0.143 MeV (Bichsel's 0.29 keV/um x 525 um gives
# 0.152 MeV); polystyrene scintillator 3 mm: xi = 0.0283 MeV, delta = 0.67 -> 0.475 MeV.
MIP_MPV_MEV: dict[tuple[str, float], float] = {("G4_Si", 0.525): 0.143, ("G4_POLYSTYRENE", 3.0): 0.475}


@dataclass(frozen=True)
class Section:
    """A run of ``n_layers`` identical physical layers: an absorber slab, then a sensor slab.

    Args:
        n_layers: physical layers in this section.
        absorber, sensor: Geant4 NIST material names.
        absorber_mm, sensor_mm: slab thicknesses in mm (absorber 0: homogeneous).
        name: a label (``ecal``, ``hcal``).
        mip_mev: most probable energy (MeV) of a MIP in one sensor, the unit of the readout
            threshold (``MIP_MPV_MEV``); None: no threshold applies.
    """

    n_layers: int
    absorber: str
    absorber_mm: float
    sensor: str
    sensor_mm: float
    name: str = ""
    mip_mev: float | None = None

    def __post_init__(self) -> None:
        if int(self.n_layers) < 1 or self.absorber_mm < 0 or self.sensor_mm <= 0:
            raise GeometryError(
                f"section {self.name or '?'}: needs n_layers >= 1, absorber_mm >= 0 and sensor_mm > 0, got "
                f"{self.n_layers}, {self.absorber_mm}, {self.sensor_mm}"
            )
        if self.mip_mev is not None and not self.mip_mev > 0:
            raise GeometryError(f"section {self.name or '?'}: mip_mev must be > 0 MeV, got {self.mip_mev}")

    @property
    def pitch_mm(self) -> float:
        """Depth of one physical layer (absorber + sensor) in mm."""
        return float(self.absorber_mm + self.sensor_mm)


@dataclass(frozen=True)
class Geometry:
    """A sampling calorimeter with a cylindrical readout (see module docstring).

    Args:
        name: short name (``ds2``, ``ds3``, ``mini`` or a user's).
        readout: the readout layers, front to back.
        absorber, sensor: Geant4 NIST material names (``None`` for a readout-only description,
            e.g. one read from a CaloChallenge binning XML file).
        absorber_mm, sensor_mm: thickness of one absorber / sensor slab in mm.
        n_physical_layers: number of (absorber + sensor) pairs; a multiple of ``len(readout)``.
        sampling_fraction: visible (sensor) / deposited energy, measured for this geometry;
            files store showers divided by it, as the CaloChallenge files do.
        transverse_size_mm: transverse half-size of the calorimeter slabs, mm.
        particle_pid: PDG id from a CaloChallenge binning file, informational.
        sections: the stack as runs of identical layers (:class:`Section`), front to back; when
            given, the single-stack fields above describe the first section, and every physical
            layer is one readout layer.
    """

    name: str
    readout: tuple[ReadoutLayer, ...]
    absorber: str | None = "G4_W"
    absorber_mm: float = 1.4
    sensor: str | None = "G4_Si"
    sensor_mm: float = 0.3
    n_physical_layers: int | None = None
    sampling_fraction: float | None = None
    transverse_size_mm: float = 500.0
    particle_pid: int | None = None
    sections: tuple[Section, ...] = ()
    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layers = tuple(layer if isinstance(layer, ReadoutLayer) else ReadoutLayer(**layer) for layer in self.readout)
        object.__setattr__(self, "readout", layers)
        if not layers:
            raise GeometryError(f"geometry {self.name!r}: needs at least one readout layer")
        if self.sections:
            secs = tuple(sec if isinstance(sec, Section) else Section(**sec) for sec in self.sections)
            object.__setattr__(self, "sections", secs)
            n_phys = sum(int(sec.n_layers) for sec in secs)
            if n_phys != len(layers):
                raise GeometryError(
                    f"geometry {self.name!r}: its sections have {n_phys} layers but the readout has {len(layers)}; "
                    "a sectioned stack reads out every physical layer"
                )
            first = secs[0]
            object.__setattr__(self, "n_physical_layers", n_phys)
            object.__setattr__(self, "absorber", first.absorber)
            object.__setattr__(self, "absorber_mm", float(first.absorber_mm))
            object.__setattr__(self, "sensor", first.sensor)
            object.__setattr__(self, "sensor_mm", float(first.sensor_mm))
        if self.n_physical_layers is not None:
            if self.n_physical_layers < 1 or self.n_physical_layers % len(layers):
                raise GeometryError(
                    f"geometry {self.name!r}: n_physical_layers={self.n_physical_layers} must be a "
                    f"positive multiple of the {len(layers)} readout layers"
                )
        if self.absorber is not None and (self.absorber_mm < 0 or self.sensor_mm <= 0):
            raise GeometryError(
                f"geometry {self.name!r}: the sensor must be > 0 mm thick and the absorber >= 0 mm "
                "(0 mm: a homogeneous calorimeter)"
            )
        if any(layer.is_crystal for layer in layers) and not all(layer.is_crystal for layer in layers):
            raise GeometryError(f"geometry {self.name!r}: crystal-matrix and cylindrical layers cannot be mixed")
        offsets = np.concatenate([[0], np.cumsum([layer.n_voxels for layer in layers])])
        object.__setattr__(self, "_offsets", tuple(int(o) for o in offsets))

    # ----------------------------------------------------------------- sizes
    @property
    def n_layers(self) -> int:
        """Number of readout layers."""
        return len(self.readout)

    @property
    def n_voxels(self) -> int:
        """Total number of voxels (the width of the ``showers`` array)."""
        return self._offsets[-1]

    @property
    def is_regular(self) -> bool:
        """True when every layer has the same binning, so showers reshape to (L, A, R)."""
        first = self.readout[0]
        return all(layer == first for layer in self.readout) and first.n_voxels > 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(layers, angular bins, radial bins) of a regular geometry."""
        if not self.is_regular:
            raise GeometryError(f"geometry {self.name!r} is irregular: it has no (L, A, R) shape")
        return (self.n_layers, self.readout[0].n_alpha, self.readout[0].n_radial)

    def layer_slice(self, layer: int) -> slice:
        """Columns of the ``showers`` array that belong to readout ``layer``."""
        return slice(self._offsets[layer], self._offsets[layer + 1])

    @property
    def layer_offsets(self) -> np.ndarray:
        """Voxel offset of each layer, length ``n_layers + 1``."""
        return np.asarray(self._offsets, dtype=np.int64)

    @property
    def physical_per_readout(self) -> int:
        """Physical (absorber + sensor) layers per readout layer."""
        if self.n_physical_layers is None:
            raise GeometryError(f"geometry {self.name!r} has no physical stack")
        return self.n_physical_layers // self.n_layers

    @property
    def has_stack(self) -> bool:
        """True when the geometry describes materials, so Geant4 can simulate it."""
        return self.absorber is not None and self.sensor is not None and self.n_physical_layers is not None

    @property
    def stack(self) -> tuple[Section, ...]:
        """The physical stack as sections (a single-stack geometry is one section)."""
        if self.sections:
            return self.sections
        if not self.has_stack:
            raise GeometryError(f"geometry {self.name!r} has no physical stack")
        return (
            Section(
                int(self.n_physical_layers or 0), str(self.absorber), self.absorber_mm, str(self.sensor), self.sensor_mm
            ),
        )

    def physical_section(self) -> np.ndarray:
        """Section index of each physical layer, shape (n_physical_layers,)."""
        return np.repeat(np.arange(len(self.stack)), [sec.n_layers for sec in self.stack])

    def sensor_z_mm(self) -> np.ndarray:
        """Depth (mm from the front face) of the centre of each readout layer's sensors, shape (n_layers,).

        A readout layer grouping several physical layers gets the mean of their sensor centres."""
        z, centres = 0.0, []
        for sec in self.stack:
            for _ in range(sec.n_layers):
                centres.append(z + sec.absorber_mm + 0.5 * sec.sensor_mm)
                z += sec.pitch_mm
        return np.asarray(centres).reshape(self.n_layers, -1).mean(axis=1)

    def layer_mip_mev(self) -> np.ndarray:
        """MIP energy (MeV) of each readout layer's sensor, NaN where the section states none."""
        per_phys = np.asarray([np.nan if sec.mip_mev is None else sec.mip_mev for sec in self.stack])
        return per_phys[self.physical_section()].reshape(self.n_layers, -1)[:, 0]

    def describe_stack(self) -> str:
        """One line: ``20 x (2.1 mm G4_W + 0.525 mm G4_Si) + 10 x (...)`` or ``unknown (readout only)``."""
        if not self.has_stack:
            return "unknown (readout only)"
        return " + ".join(
            f"{sec.n_layers} x ({sec.absorber_mm:g} mm {sec.absorber} + {sec.sensor_mm:g} mm {sec.sensor})"
            for sec in self.stack
        )

    def describe_readout(self) -> str:
        """One line: layers and bins, cells and sub-cells."""
        parts, i = [], 0
        while i < self.n_layers:
            lay, j = self.readout[i], i
            while j < self.n_layers and self.readout[j] == lay:
                j += 1
            if lay.is_crystal:
                sub = f", {lay.subcells} x {lay.subcells} sub-cells each" if lay.subcells > 1 else ""
                parts.append(
                    f"{j - i} layers x {lay.n_crystals} x {lay.n_crystals} cells of {lay.crystal_mm:g} mm{sub}"
                )
            else:
                parts.append(f"{j - i} layers x {lay.n_alpha} angular x {lay.n_radial} radial bins")
            i = j
        return " + ".join(parts)

    @property
    def has_subcells(self) -> bool:
        """True when Geant4 scores a grid finer than the cells (point clouds can be simulated)."""
        return any(layer.subcells > 1 for layer in self.readout)

    # ----------------------------------------------------------- coordinates
    def voxel_layer(self) -> np.ndarray:
        """Readout layer index of each voxel, shape (n_voxels,)."""
        return np.repeat(np.arange(self.n_layers), [layer.n_voxels for layer in self.readout])

    @property
    def is_crystal(self) -> bool:
        """True when the readout is a crystal matrix (every layer)."""
        return all(layer.is_crystal for layer in self.readout)

    def voxel_r_mm(self) -> np.ndarray:
        """Radial bin centre of each voxel in mm (crystal centre's distance to the axis), shape (n_voxels,)."""
        if self.is_crystal:
            x, y = self.voxel_xy_mm()
            return np.hypot(x, y)
        parts = []
        for layer in self.readout:
            if layer.n_voxels:
                e = np.asarray(layer.r_edges_mm)
                parts.append(np.tile(0.5 * (e[1:] + e[:-1]), layer.n_alpha))
        return np.concatenate(parts) if parts else np.zeros(0)

    def voxel_alpha(self) -> np.ndarray:
        """Angular bin centre of each voxel in radians in (-pi, pi), shape (n_voxels,).

        For a crystal matrix: the direction of the crystal centre (0 for the middle crystal)."""
        if self.is_crystal:
            x, y = self.voxel_xy_mm()
            return np.arctan2(y, x)
        parts = []
        for layer in self.readout:
            if layer.n_voxels:
                n = layer.n_alpha
                centres = -math.pi + (np.arange(n) + 0.5) * 2 * math.pi / n if n > 1 else np.zeros(1)
                parts.append(np.repeat(centres, layer.n_radial))
        return np.concatenate(parts) if parts else np.zeros(0)

    def voxel_xy_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Transverse (x, y) of each voxel centre in mm: r cos(alpha), r sin(alpha), or the crystal centres."""
        if self.is_crystal:
            xs, ys = [], []
            for layer in self.readout:
                c = layer.crystal_centres_mm()
                xs.append(np.tile(c, layer.n_crystals))
                ys.append(np.repeat(c, layer.n_crystals))
            return np.concatenate(xs), np.concatenate(ys)
        r, a = self.voxel_r_mm(), self.voxel_alpha()
        return r * np.cos(a), r * np.sin(a)

    def voxel_area_mm2(self) -> np.ndarray:
        """Transverse area of each voxel in mm^2."""
        if self.is_crystal:
            return np.concatenate([np.full(layer.n_voxels, layer.crystal_mm**2) for layer in self.readout])
        parts = []
        for layer in self.readout:
            if layer.n_voxels:
                e = np.asarray(layer.r_edges_mm)
                ring = math.pi * (e[1:] ** 2 - e[:-1] ** 2) / layer.n_alpha
                parts.append(np.tile(ring, layer.n_alpha))
        return np.concatenate(parts) if parts else np.zeros(0)

    # ------------------------------------------------------------- materials
    @property
    def layer_thickness_mm(self) -> float:
        """Depth of one readout layer in mm (a single stack; sections: see :meth:`sensor_z_mm`)."""
        if len(self.sections) > 1:
            raise GeometryError(f"geometry {self.name!r} has sections of different depths: no single layer thickness")
        return self.physical_per_readout * (self.absorber_mm + self.sensor_mm)

    def radiation_lengths_per_layer(self) -> float:
        """Depth of one readout layer in radiation lengths X0 (needs tabulated materials)."""
        try:
            x0a = RADIATION_LENGTH_MM[self.absorber or ""] if self.absorber_mm > 0 else 1.0
            x0s = RADIATION_LENGTH_MM[self.sensor or ""]
        except KeyError as err:
            raise GeometryError(f"no radiation length tabulated for material {err.args[0]!r}") from None
        return self.physical_per_readout * (self.absorber_mm / x0a + self.sensor_mm / x0s)

    def with_sampling_fraction(self, value: float) -> Geometry:
        """A copy with the measured sampling fraction set."""
        return replace(self, sampling_fraction=float(value))

    # ------------------------------------------------------------ comparison
    def same_readout(self, other: Geometry) -> bool:
        """True when both describe the same voxels (layers, edges to 1e-6 mm, angular bins)."""
        if self.n_layers != other.n_layers:
            return False
        for a, b in zip(self.readout, other.readout):
            if a.n_alpha != b.n_alpha or a.n_radial != b.n_radial or a.is_crystal != b.is_crystal:
                return False
            if a.is_crystal and not math.isclose(a.crystal_mm, b.crystal_mm, abs_tol=1e-6):
                return False
            if not np.allclose(a.r_edges_mm, b.r_edges_mm, atol=1e-6, rtol=0):
                return False
        return True

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (round trip: :meth:`from_dict`)."""
        d = asdict(self)
        d.pop("_offsets", None)
        d["readout"] = [
            {"crystal_mm": layer.crystal_mm, "n_crystals": layer.n_crystals}
            | ({"subcells": layer.subcells} if layer.subcells > 1 else {})
            if layer.is_crystal
            else {"r_edges_mm": list(layer.r_edges_mm), "n_alpha": layer.n_alpha}
            for layer in self.readout
        ]
        # compress a regular readout to one entry plus a count
        if all(layer == self.readout[0] for layer in self.readout):
            d["readout"] = {"repeat": self.n_layers, "layer": d["readout"][0]}
        if not self.sections:
            d.pop("sections", None)  # single-stack files keep the same JSON as before
        else:
            d["sections"] = [asdict(sec) for sec in self.sections]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Geometry:
        """Build from :meth:`to_dict` output."""
        d = dict(d)
        ro = d.pop("readout")
        if isinstance(ro, dict):
            layers = tuple(ReadoutLayer(**ro["layer"]) for _ in range(int(ro["repeat"])))
        else:
            layers = tuple(ReadoutLayer(**layer) for layer in ro)
        known = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
        unknown = set(d) - known
        if unknown:
            raise GeometryError(f"unknown geometry fields {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(readout=layers, **d)

    def to_json(self) -> str:
        """JSON text (stored as the ``geometry`` attribute of every file)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Geometry:
        """Inverse of :meth:`to_json`."""
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise GeometryError(f"geometry JSON is not valid: {err}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Geometry:
        """Read a geometry from a JSON file or a CaloChallenge binning XML file."""
        path = Path(path)
        if not path.is_file():
            raise GeometryError(f"{path}: geometry file not found")
        if path.suffix.lower() == ".xml":
            return cls.from_calochallenge_xml(path)
        return cls.from_json(path.read_text())

    @classmethod
    def from_calochallenge_xml(cls, path: str | Path, name: str | None = None) -> Geometry:
        """Read a CaloChallenge 2022 binning file (``binning_dataset_*.xml``).

        The XML carries only the readout; the physical stack stays unknown unless it is the Par04
        readout of datasets 2/3, which gets the ``ds2``/``ds3`` stack.
        """
        path = Path(path)
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as err:
            raise GeometryError(f"{path}: not a readable CaloChallenge binning XML ({err})") from None
        bins = root.find("Bin") if root.tag != "Bin" else root
        if bins is None:
            raise GeometryError(f"{path}: no <Bin> element; expected a CaloChallenge binning file")
        layers = []
        for el in bins.findall("Layer"):
            edges = tuple(float(x) for x in el.attrib["r_edges"].split(",") if x.strip())
            layers.append(ReadoutLayer(edges, int(el.attrib.get("n_bin_alpha", 1))))
        pid = int(bins.attrib["pid"]) if "pid" in bins.attrib else None
        geo = cls(
            name=name or path.stem,
            readout=tuple(layers),
            absorber=None,
            sensor=None,
            n_physical_layers=None,
            particle_pid=pid,
        )
        for preset in ("ds2", "ds3"):
            ref = PRESETS[preset]
            if geo.same_readout(ref):
                return replace(ref, name=name or preset, particle_pid=pid)
        return geo


def _regular(n_layers: int, n_alpha: int, n_r: int, dr_mm: float) -> tuple[ReadoutLayer, ...]:
    edges = tuple(round(dr_mm * i, 6) for i in range(n_r + 1))
    return tuple(ReadoutLayer(edges, n_alpha) for _ in range(n_layers))


PRESETS: dict[str, Geometry] = {
    # Geant4 Par04 calorimeter of CaloChallenge datasets 2/3: 90 x (1.4 mm W + 0.3 mm Si).
    "ds2": Geometry("ds2", _regular(45, 16, 9, 4.65), "G4_W", 1.4, "G4_Si", 0.3, 90),
    "ds3": Geometry("ds3", _regular(45, 50, 18, 2.325), "G4_W", 1.4, "G4_Si", 0.3, 90),
    # Small and fast, for tests and the demo: 24 x (3.5 mm W + 0.3 mm Si) ~ 24 X0,
    # read out as 12 layers x 8 angles x 6 radial bins of 8 mm (576 voxels).
    "mini": Geometry("mini", _regular(12, 8, 6, 8.0), "G4_W", 3.5, "G4_Si", 0.3, 24),
    # CMS-inspired homogeneous lead-tungstate calorimeter for photons: 230 mm of PbWO4 (25.8 X0),
    # a 5 x 5 matrix of 22 mm crystals around the impact point, read out in 10 depth segments
    # of 23 mm (2.6 X0) to study longitudinal shapes (CMS crystals have a single readout).
    "pbwo4": Geometry(
        "pbwo4",
        tuple(ReadoutLayer(crystal_mm=22.0, n_crystals=5) for _ in range(10)),
        "G4_PbWO4",
        0.0,
        "G4_PbWO4",
        23.0,
        10,
        transverse_size_mm=200.0,
    ),
}

# ILD-like highly granular calorimeters (sources in docs/geometries.md): the ECal of the ILD
# detector (Si-W, as in the CaloClouds samples) and an AHCAL-like steel-scintillator HCal.
_ILD_ECAL = (
    Section(20, "G4_W", 2.1, "G4_Si", 0.525, "ecal-front", MIP_MPV_MEV[("G4_Si", 0.525)]),
    Section(10, "G4_W", 4.2, "G4_Si", 0.525, "ecal-back", MIP_MPV_MEV[("G4_Si", 0.525)]),
)
_ILD_HCAL = (Section(48, "G4_Fe", 17.0, "G4_POLYSTYRENE", 3.0, "hcal", MIP_MPV_MEV[("G4_POLYSTYRENE", 3.0)]),)
_ECAL_CELLS = ReadoutLayer(crystal_mm=5.09, n_crystals=31, subcells=5)  # 5 x 5 points per cell (CaloClouds)
_HCAL_TILES = ReadoutLayer(crystal_mm=30.0, n_crystals=31, subcells=3)
PRESETS.update(
    {
        # 30 Si-W layers, 31 x 31 cells of 5.09 mm around the impact point, 5 x 5 sub-cells per cell
        "ild-ecal": Geometry("ild-ecal", (_ECAL_CELLS,) * 30, transverse_size_mm=250.0, sections=_ILD_ECAL),
        # 48 steel-scintillator layers, 31 x 31 tiles of 30 mm, 3 x 3 sub-cells per tile
        "ild-hcal": Geometry("ild-hcal", (_HCAL_TILES,) * 48, transverse_size_mm=600.0, sections=_ILD_HCAL),
        # the ECal directly followed by the HCal
        "ild-ecal-hcal": Geometry(
            "ild-ecal-hcal",
            (_ECAL_CELLS,) * 30 + (_HCAL_TILES,) * 48,
            transverse_size_mm=600.0,
            sections=_ILD_ECAL + _ILD_HCAL,
        ),
    }
)


def get_geometry(spec: str | Path | Geometry) -> Geometry:
    """Resolve a preset name, a JSON geometry file or a CaloChallenge XML file to a Geometry."""
    if isinstance(spec, Geometry):
        return spec
    key = str(spec)
    if key in PRESETS:
        return PRESETS[key]
    if Path(key).suffix.lower() in (".json", ".xml"):
        return Geometry.from_file(key)
    raise GeometryError(
        f"unknown geometry {key!r}: use a preset ({', '.join(PRESETS)}), a JSON geometry file "
        "or a CaloChallenge binning XML file"
    )
