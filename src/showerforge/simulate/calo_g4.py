"""Geant4 sampling calorimeter: the reference simulation of voxelised showers.

A :class:`~showerforge.geometry.Geometry` is built in Geant4 as ``n_physical_layers`` x
(absorber slab + sensor slab), square slabs of half-size ``transverse_size_mm``, in a
``G4_Galactic`` world. The calorimeter front face is at ``z = 0``; the beam goes along +z.

Scoring runs in C++ (no Python call per step): each sensor slab holds a cylinder of the readout
radius (last radial edge), replicated in phi (``n_alpha``) and then in rho (``n_radial``), or a
box of the cell matrix replicated in x and y; a ``G4MultiFunctionalDetector`` with
``G4PSEnergyDeposit3D`` scores the cells, two more score the sensor outside the readout and the
absorbers. A geometry of several sections (ECal + HCal) builds each section's slabs and readout
on its own and places them one after the other. Where the cells are divided into ``subcells``,
the replicas are the fine squares: their non-empty squares are the shower's points (kept sparse),
and a second primitive sums each sensor layer in C++, an independent check of the points' sum.
Python reads the hit maps once per event.

Physics: the EM constructors of :data:`PHYSICS_EM` (e-, e+, gamma) or a Geant4 hadronic reference
list (pi+, pi-, and any particle). Without the real Geant4 data sets, ``FTFP_BERT`` and
``QGSP_BERT`` run on the approximate hadronic stand-ins of :mod:`showerforge.simulate.g4hadronic`
(recorded in the provenance); other reference lists need the real data.

Geant4 holds one state per process: a process builds one geometry and simulates one shard
(:func:`simulate_showers` may be called again in the same process only with the same geometry
and physics). The interpreter may crash at teardown after Geant4 ran; callers that care flush
their outputs and leave with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.geometry import Geometry, GeometryError
from showerforge.simulate.g4hadronic import APPROXIMATE_LISTS, UI_COMMANDS, needed_datasets

__all__ = [
    "ShowerBatch",
    "simulate_showers",
    "measure_sampling_fraction",
    "preflight",
    "PHYSICS_EM",
    "PHYSICS_HADRONIC",
    "PARTICLES",
    "HADRONS",
]

# physics name -> geant4_pybind EM constructor
PHYSICS_EM: dict[str, str] = {
    "standard": "G4EmStandardPhysics",
    "option0": "G4EmStandardPhysics",
    "option1": "G4EmStandardPhysics_option1",
    "option2": "G4EmStandardPhysics_option2",
    "option3": "G4EmStandardPhysics_option3",
    "option4": "G4EmStandardPhysics_option4",
}
# accepted particle names (aliases) -> Geant4 names
PARTICLES: dict[str, str] = {
    "e-": "e-",
    "electron": "e-",
    "e+": "e+",
    "positron": "e+",
    "gamma": "gamma",
    "photon": "gamma",
    "pi+": "pi+",
    "pi-": "pi-",
}
# hadronic reference lists that run on the approximate data too (any reference list runs on real data)
PHYSICS_HADRONIC: tuple[str, ...] = APPROXIMATE_LISTS
HADRONS: frozenset[str] = frozenset({"pi+", "pi-"})


@dataclass
class ShowerBatch:
    """Showers of one Geant4 run.

    Attributes:
        showers: (N, n_voxels) float32, visible (sensor) energy in MeV per voxel, voxels in
            (layer, angle, radius) order; *not* divided by the sampling fraction.
        sensor_outside_mev: (N,) visible energy in the sensors outside the readout grid.
        absorber_mev: (N,) energy deposited in the absorbers.
        incident_mev: (N,) kinetic energy of the primary.
        provenance: Geant4 version, physics list, data sets, production cut, seed, ...
        hits: for a geometry with ``subcells``: the non-empty fine squares, flat, sorted by
            (event, layer, row, column): ``offsets`` (N + 1,), ``layer``, ``row``, ``col`` (int),
            ``mev`` (float32 visible energy); else None.
        layer_mev: (N, n_physical_layers) visible energy of each sensor layer's fine grid, summed
            by Geant4 (C++), for a geometry with ``subcells``; else None.
        sensor_steps: (N,) charged-particle steps in the scored sensor cells (the energy deposits
            before clustering), for a geometry with ``subcells``; else None.
        section_mev: for a geometry of several sections (``ild-ecal-hcal``): (N, n_sections, 3)
            energy per section as (sensor cells, sensor outside the cells, absorber), MeV; else None.
    """

    showers: np.ndarray
    sensor_outside_mev: np.ndarray
    absorber_mev: np.ndarray
    incident_mev: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    hits: dict[str, np.ndarray] | None = None
    layer_mev: np.ndarray | None = None
    sensor_steps: np.ndarray | None = None
    section_mev: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.showers.shape[0])

    @property
    def visible_mev(self) -> np.ndarray:
        """All visible energy per shower (grid + outside), MeV."""
        return self.showers.sum(axis=1, dtype=np.float64) + self.sensor_outside_mev


def measure_sampling_fraction(batch: ShowerBatch) -> tuple[float, float]:
    """Sampling fraction E_sensor / (E_sensor + E_absorber) and its statistical uncertainty.

    Ratio of sums over the batch (the energy-weighted mean), with the uncertainty of a ratio
    estimator from the per-shower spread (delta method).
    """
    vis = np.asarray(batch.visible_mev, dtype=np.float64)
    tot = vis + np.asarray(batch.absorber_mev, dtype=np.float64)
    n = len(vis)
    if n == 0 or tot.sum() <= 0:
        raise UserError(
            "measure_sampling_fraction: the batch has no deposited energy; "
            "expected at least one shower that deposits energy in the calorimeter"
        )
    f = float(vis.sum() / tot.sum())
    if n < 2:
        return f, float("nan")
    resid = vis - f * tot
    err = math.sqrt(float(np.sum(resid**2)) / (n * (n - 1))) / float(tot.mean())
    return f, err


# ------------------------------------------------------------------------------------------------
# one Geant4 state per process

_STATE: dict[str, Any] = {}


@contextlib.contextmanager
def quiet_stdout(enabled: bool = True):
    """Send the C++ stdout (Geant4 banner, tables) to /dev/null while the block runs."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _check_geometry(geometry: Geometry) -> list[dict[str, Any]]:
    """The readout of each section: ``first`` physical layer, ``n`` layers, ``n_alpha``, ``n_r``,
    ``dr`` (bin width or fine square, mm), ``crystal``, ``fine``, ``section``."""
    if not geometry.has_stack:
        raise GeometryError(
            f"geometry {geometry.name!r} has no physical stack (materials/thicknesses): cannot simulate"
        )
    if not geometry.sections and not geometry.is_regular:
        raise GeometryError(
            f"geometry {geometry.name!r}: Geant4 simulation needs a regular readout (same binning in every layer)"
        )
    layouts, first = [], 0
    ppr = geometry.physical_per_readout
    for si, sec in enumerate(geometry.stack):
        ro = geometry.readout[first // ppr]
        if any(geometry.readout[j // ppr] != ro for j in range(first, first + sec.n_layers)):
            raise GeometryError(
                f"geometry {geometry.name!r}: section {sec.name or si} needs the same readout in all its layers"
            )
        if ro.is_crystal:
            width = ro.crystal_mm
            if 0.5 * ro.n_crystals * width > geometry.transverse_size_mm:
                raise GeometryError(
                    f"geometry {geometry.name!r}: the cell matrix ({ro.n_crystals} x {width} mm) is wider than the "
                    f"slabs (half-size {geometry.transverse_size_mm} mm)"
                )
            n_alpha = n_r = ro.fine_n
            dr = ro.fine_mm
        elif geometry.sections:
            raise GeometryError(
                f"geometry {geometry.name!r}: a stack of sections is read out by square cells (crystal_mm, n_crystals)"
            )
        else:
            n_alpha = ro.n_alpha
            n_r = ro.n_radial
            edges = np.asarray(ro.r_edges_mm)
            dr = float(edges[1] - edges[0])
            if edges[0] != 0.0 or not np.allclose(np.diff(edges), dr, rtol=1e-6, atol=1e-9):
                raise GeometryError(
                    f"geometry {geometry.name!r}: Geant4 readout needs uniform radial bins starting at 0, got {tuple(edges)}"
                )
            if edges[-1] > geometry.transverse_size_mm:
                raise GeometryError(
                    f"geometry {geometry.name!r}: readout radius {edges[-1]} mm exceeds the slab half-size "
                    f"{geometry.transverse_size_mm} mm"
                )
        layouts.append(
            {
                "first": first,
                "n": sec.n_layers,
                "n_alpha": n_alpha,
                "n_r": n_r,
                "dr": dr,
                "crystal": ro.is_crystal,
                "fine": ro.subcells > 1 or bool(geometry.sections),
                "section": sec,
            }
        )
        first += sec.n_layers
    return layouts


def _check_physics_data(physics: str, data_info: dict[str, str]) -> None:
    """Refuse a physics choice that the data sets at hand cannot run (one-line ``UserError``)."""
    if data_info.get("physics_data") == "approximate" and physics == "option4":
        raise UserError(
            "physics 'option4' needs data of the real G4EMLOW data set (Goudsmit-Saunderson msc, "
            "Penelope/Livermore models) that has no approximate stand-in: install the Geant4 data "
            "(GEANT4_DATA_DIR) or use standard, option1, option2 or option3"
        )
    if data_info.get("hadronic_data") == "approximate" and physics not in PHYSICS_HADRONIC:
        raise UserError(
            f"physics {physics!r} needs the real Geant4 hadronic data sets ({needed_datasets(physics)}) and "
            f"{data_info.get('hadronic_missing_datasets', '?')} are not installed: install them (GEANT4_DATA_DIR) "
            f"or use {' or '.join(PHYSICS_HADRONIC)}, which run on approximate hadronic data"
        )


_ASK_GEANT4 = """
import json, sys
import geant4_pybind as g4
physics = sys.argv[1]
print(json.dumps({
    "materials": list(g4.G4NistManager.Instance().GetNistMaterialNames()),
    "reference": bool(physics) and bool(g4.G4PhysListFactory().IsReferencePhysList(physics)),
}))
"""


def _ask_geant4(physics: str) -> tuple[set[str], bool]:
    """(Geant4's NIST material names, whether ``physics`` is a reference list), from a short child
    process: Geant4 reads its data set-up once per process, so this one never imports it."""
    import json
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", _ASK_GEANT4, "" if physics in PHYSICS_EM else physics],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not query Geant4 (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return set(answer["materials"]), bool(answer["reference"])


def preflight(geometry: Geometry, physics: str) -> None:
    """Check, in about a second and before any shard starts, that Geant4 can build this set-up.

    Catches what would otherwise fail inside every shard process: a geometry Geant4 cannot place,
    a material that is not in Geant4's NIST database, an unknown physics list, or a hadronic
    list that needs real Geant4 data sets that are not installed. Geant4 itself is asked in a child
    process (:func:`_ask_geant4`); this process never imports it. The approximate data a physics
    list needs are built here, once, before the shards start.

    Raises:
        GeometryError: the geometry or one of its materials.
        UserError: the physics list.
    """
    import warnings

    _check_geometry(geometry)
    from showerforge.simulate.g4data import ensure_geant4_env

    with warnings.catch_warnings(record=True) as notes:  # said once the set-up is known to be good
        warnings.simplefilter("always")
        data_info = ensure_geant4_env(hadronic=physics not in PHYSICS_EM)
    if physics in PHYSICS_EM:
        _check_physics_data(physics, data_info)  # before asking Geant4; a reference list once it is known
    known, reference = _ask_geant4(physics)
    roles = [
        (role, name) for sec in geometry.stack for role, name in (("absorber", sec.absorber), ("sensor", sec.sensor))
    ]
    for role, name in roles:  # every section's materials
        if name not in known:
            raise GeometryError(
                f"geometry {geometry.name!r} [{role}]: {name!r} is not a Geant4 NIST material "
                "(e.g. G4_W, G4_Si, G4_Pb, G4_PbWO4, G4_lAr)"
            )
    if physics not in PHYSICS_EM:
        if not reference:
            raise UserError(_unknown_physics(physics))
        _check_physics_data(physics, data_info)
    for note in notes:
        warnings.warn_explicit(note.message, note.category, note.filename, note.lineno)


def _unknown_physics(physics: str) -> str:
    return (
        f"unknown physics {physics!r}: use one of {sorted(PHYSICS_EM)} (EM) or a Geant4 reference list "
        f"such as {', '.join(PHYSICS_HADRONIC)}"
    )


def _physics_factory(g4: Any, physics: str, production_cut_mm: float) -> tuple[Callable[[], Any], str]:
    """A function that makes the physics list (call it once the run manager exists), and its name."""
    mm = g4.mm
    if physics in PHYSICS_EM:
        ctor = getattr(g4, PHYSICS_EM[physics])

        class PhysicsList(g4.G4VModularPhysicsList):
            def __init__(self):
                super().__init__()
                self.SetVerboseLevel(0)
                self.SetDefaultCutValue(production_cut_mm * mm)
                self.em = ctor()
                self.RegisterPhysics(self.em)

        return PhysicsList, PHYSICS_EM[physics]

    def make_reference_list() -> Any:
        factory = g4.G4PhysListFactory()
        if not factory.IsReferencePhysList(physics):
            raise UserError(_unknown_physics(physics))
        # the list's own class: geant4-pybind 0.1.3 cannot hand G4PhysListFactory's object to
        # SetUserInitialization (smart_holder RuntimeError); names with an EM suffix have no class
        ctor = getattr(g4, physics, None)
        pl = ctor() if ctor is not None else factory.GetReferencePhysList(physics)
        pl.SetVerboseLevel(0)
        pl.SetDefaultCutValue(production_cut_mm * mm)
        return pl

    return make_reference_list, physics


def _config_key(geometry: Geometry, physics: str, cut: float) -> str:
    return f"{geometry.to_json()}|{physics}|{cut:.9g}"


def _build(geometry: Geometry, physics: str, production_cut_mm: float, quiet: bool) -> dict[str, Any]:
    """Build geometry, physics and actions once per process; return the state."""
    from showerforge.simulate.g4data import ensure_geant4_env

    data_info = ensure_geant4_env(hadronic=physics not in PHYSICS_EM)
    _check_physics_data(physics, data_info)
    import geant4_pybind as g4

    layouts = _check_geometry(geometry)
    n_phys = int(geometry.n_physical_layers or 0)
    mm = g4.mm
    total = sum(sec.n_layers * sec.pitch_mm for sec in geometry.stack)
    half_xy = geometry.transverse_size_mm
    keep: list[Any] = []  # Python references to every Geant4 object we create

    def readout_tree(tag: str, lay: dict[str, Any], sen_mat: Any, hz: float) -> Any:
        """The readout inside one sensor slab: (mother logical, logical of the scored cells)."""
        n_alpha, n_r, dr = lay["n_alpha"], lay["n_r"], lay["dr"]
        if lay["crystal"]:
            # cell matrix: a box replicated in x (columns), each column in y (rows);
            # copies run from -x to +x (and -y to +y), so depth 0 is the row, depth 1 the column
            half = 0.5 * n_r * dr * mm
            cyl_s = g4.G4Box("Readout" + tag, half, half, hz)
            cyl_l = g4.G4LogicalVolume(cyl_s, sen_mat, "Readout" + tag)
            phi_s = g4.G4Box("Column" + tag, 0.5 * dr * mm, half, hz)
            phi_l = g4.G4LogicalVolume(phi_s, sen_mat, "Column" + tag)
            rho_s = g4.G4Box("Crystal" + tag, 0.5 * dr * mm, 0.5 * dr * mm, hz)
            rho_l = g4.G4LogicalVolume(rho_s, sen_mat, "Crystal" + tag)
            phi_p = g4.G4PVReplica("Column" + tag, phi_l, cyl_l, g4.kXAxis, n_r, dr * mm, 0.0)
            rho_p = g4.G4PVReplica("Crystal" + tag, rho_l, phi_l, g4.kYAxis, n_alpha, dr * mm, 0.0)
        else:
            radius = n_r * dr
            cyl_s = g4.G4Tubs("Readout" + tag, 0.0, radius * mm, hz, 0.0, 2 * math.pi)
            cyl_l = g4.G4LogicalVolume(cyl_s, sen_mat, "Readout" + tag)
            dphi = 2 * math.pi / n_alpha
            # phi replicas: copy a spans [-pi + a dphi, -pi + (a+1) dphi) when the cell solid is
            # centred on its local x axis (Geant4 rotates copy a to offset + (a + 1/2) width)
            phi_s = g4.G4Tubs("PhiCell" + tag, 0.0, radius * mm, hz, -0.5 * dphi, dphi)
            phi_l = g4.G4LogicalVolume(phi_s, sen_mat, "PhiCell" + tag)
            rho_s = g4.G4Tubs("RhoCell" + tag, 0.0, dr * mm, hz, -0.5 * dphi, dphi)
            rho_l = g4.G4LogicalVolume(rho_s, sen_mat, "RhoCell" + tag)
            phi_p = g4.G4PVReplica("PhiCell" + tag, phi_l, cyl_l, g4.kPhi, n_alpha, dphi, -math.pi)
            rho_p = g4.G4PVReplica("RhoCell" + tag, rho_l, phi_l, g4.kRho, n_r, dr * mm, 0.0)
        keep.extend([cyl_s, cyl_l, phi_s, phi_l, rho_s, rho_l, phi_p, rho_p])
        return cyl_l, rho_l

    class Detector(g4.G4VUserDetectorConstruction):
        def Construct(self):  # noqa: N802 (Geant4 API)
            nist = g4.G4NistManager.Instance()

            def material(name: str) -> Any:
                mat = nist.FindOrBuildMaterial(name)
                if mat is None:
                    raise GeometryError(f"geometry {geometry.name!r}: unknown Geant4 NIST material {name!r}")
                return mat

            world_s = g4.G4Box("World", (half_xy + 10) * mm, (half_xy + 10) * mm, (total + 10) * mm)
            world_l = g4.G4LogicalVolume(world_s, material("G4_Galactic"), "World")
            world_p = g4.G4PVPlacement(None, g4.G4ThreeVector(), world_l, "World", None, False, 0, False)
            keep.extend([world_s, world_l])
            self.logicals = []
            z = 0.0
            for si, lay in enumerate(layouts):
                sec = lay["section"]
                tag = "" if si == 0 else f"_{si}"
                # a homogeneous calorimeter (absorber 0 mm) keeps an unplaced absorber volume
                abs_s = g4.G4Box("Absorber" + tag, half_xy * mm, half_xy * mm, max(0.5 * sec.absorber_mm, 1e-3) * mm)
                abs_l = g4.G4LogicalVolume(abs_s, material(sec.absorber), "Absorber" + tag)
                sen_mat = material(sec.sensor)
                sen_s = g4.G4Box("Sensor" + tag, half_xy * mm, half_xy * mm, 0.5 * sec.sensor_mm * mm)
                sen_l = g4.G4LogicalVolume(sen_s, sen_mat, "Sensor" + tag)
                cyl_l, rho_l = readout_tree(tag, lay, sen_mat, 0.5 * sec.sensor_mm * mm)
                cyl_p = g4.G4PVPlacement(None, g4.G4ThreeVector(), cyl_l, "Readout" + tag, sen_l, False, 0, False)
                keep.extend([abs_s, abs_l, sen_s, sen_l, cyl_p])
                for j in range(sec.n_layers):
                    i = lay["first"] + j  # copy number = global physical layer
                    if sec.absorber_mm > 0:
                        pa = g4.G4PVPlacement(
                            None,
                            g4.G4ThreeVector(0, 0, (z + 0.5 * sec.absorber_mm) * mm),
                            abs_l,
                            "Absorber" + tag,
                            world_l,
                            False,
                            i,
                            False,
                        )
                        keep.append(pa)
                    ps = g4.G4PVPlacement(
                        None,
                        g4.G4ThreeVector(0, 0, (z + sec.absorber_mm + 0.5 * sec.sensor_mm) * mm),
                        sen_l,
                        "Sensor" + tag,
                        world_l,
                        False,
                        i,
                        False,
                    )
                    keep.append(ps)
                    z += sec.pitch_mm
                self.logicals.append({"rho": rho_l, "sen": sen_l, "abs": abs_l})
            keep.append(world_p)
            return world_p

        def ConstructSDandField(self):  # noqa: N802
            sdm = g4.G4SDManager.GetSDMpointer()
            sdm.SetVerboseLevel(0)
            for si, lay in enumerate(layouts):
                n_alpha, n_r = lay["n_alpha"], lay["n_r"]
                # depth: 0 rho cell, 1 phi cell, 2 readout cylinder, 3 sensor slab (copy = layer);
                # cell matrix: 0 row (y), 1 column (x), 2 readout box, 3 sensor slab
                grid = (
                    g4.G4PSEnergyDeposit3D("edep", n_phys, n_alpha, n_r, 3, 0, 1)
                    if lay["crystal"]
                    else g4.G4PSEnergyDeposit3D("edep", n_phys, n_alpha, n_r, 3, 1, 0)
                )
                primitives = {
                    f"grid{si}": ("rho", [grid]),
                    f"outside{si}": ("sen", [g4.G4PSEnergyDeposit("edep", 0)]),
                    f"absorber{si}": ("abs", [g4.G4PSEnergyDeposit("edep", 0)]),
                }
                if lay["fine"]:  # the sensor layer's sum over its fine squares, in C++
                    steps = g4.G4PSNofStep("steps", 3)  # charged-particle steps: the deposits before clustering
                    charged = g4.G4SDChargedFilter("charged")
                    steps.SetFilter(charged)
                    keep.append(charged)
                    primitives[f"grid{si}"][1].extend([g4.G4PSEnergyDeposit("layer", 3), steps])
                for det_name, (lv_key, scorers) in primitives.items():
                    det = g4.G4MultiFunctionalDetector(det_name)
                    for scorer in scorers:
                        det.RegisterPrimitive(scorer)
                    sdm.AddNewDetector(det)
                    self.SetSensitiveDetector(self.logicals[si][lv_key], det)
                    keep.extend([det, *scorers])

    # ----- physics (instantiated after the run manager exists: cuts need the default region)
    make_physics, physics_name = _physics_factory(g4, physics, production_cut_mm)
    hadronic = physics not in PHYSICS_EM

    st = _STATE  # the closures below read the per-run "job" from the process-wide state
    st.clear()
    st.update(
        {
            "key": _config_key(geometry, physics, production_cut_mm),
            "ready": False,
            "g4": g4,
            "data_info": data_info,
            "physics_name": physics_name,
            "hadronic": hadronic,
            "n_phys": n_phys,
            "layouts": layouts,
            "keep": keep,
        }
    )

    class Primary(g4.G4VUserPrimaryGeneratorAction):
        def __init__(self):
            super().__init__()
            self.gun = g4.G4ParticleGun(1)

        def GeneratePrimaries(self, event):  # noqa: N802
            job = st["job"]
            i = event.GetEventID()
            self.gun.SetParticleEnergy(float(job["energies"][i]) * g4.MeV)
            self.gun.GeneratePrimaryVertex(event)

    class EventAction(g4.G4UserEventAction):
        def EndOfEventAction(self, event):  # noqa: N802
            job = st["job"]
            i = event.GetEventID()
            hce = event.GetHCofThisEvent()
            cid = st["cid"]
            outside = absorber = 0.0
            for si, lay in enumerate(layouts):
                sec_outside = sum(v for _k, v in hce.GetHC(cid[f"outside{si}/edep"]))
                sec_absorber = sum(v for _k, v in hce.GetHC(cid[f"absorber{si}/edep"]))
                job["sections"][i, si, 1:] = sec_outside, sec_absorber
                outside += sec_outside
                absorber += sec_absorber
                if lay["fine"]:
                    items = list(hce.GetHC(cid[f"grid{si}/edep"]))
                    keys = np.fromiter((k for k, _v in items), np.int64, len(items))
                    vals = np.fromiter((v for _k, v in items), np.float64, len(items))
                    job["hits"].append((i, si, keys, vals))
                    for k, v in hce.GetHC(cid[f"grid{si}/layer"]):
                        job["layer_mev"][i, k] += v
                    job["steps"][i] += sum(v for _k, v in hce.GetHC(cid[f"grid{si}/steps"]))
                else:
                    grid = job["grid"]
                    for key, val in hce.GetHC(cid[f"grid{si}/edep"]):
                        grid[i, key] += val
            job["outside"][i] = outside
            job["absorber"][i] = absorber
            done = i + 1
            cb = job["progress"]
            if cb is not None and (done % job["every"] == 0 or done == job["n"]):
                cb(done)

    with quiet_stdout(quiet):
        rm = g4.G4RunManagerFactory.CreateRunManager(g4.G4RunManagerType.SerialOnly)
        ui = g4.G4UImanager.GetUIpointer()
        for cmd in (
            "/control/verbose 0",
            "/run/verbose 0",
            "/event/verbose 0",
            "/tracking/verbose 0",
            "/process/verbose 0",
            "/process/em/verbose 0",
            "/process/had/verbose 0",
        ):
            ui.ApplyCommand(cmd)
        params = g4.G4EmParameters.Instance()
        params.SetVerbose(0)
        detector = Detector()
        rm.SetUserInitialization(detector)
        physics_list = make_physics()
        if "hadronic_gamma_nuclear_xs" in data_info:
            # no G4PARTICLEXS gamma tables: the code-only photo-nuclear cross section (the list's
            # messengers exist once it is constructed; the command must come before Initialize)
            for cmd in UI_COMMANDS:
                ui.ApplyCommand(cmd)
        if data_info.get("physics_data") == "approximate" and physics in ("option3", "option4"):
            # these options switch on atomic de-excitation, whose data (fluor/, auger/) has no
            # approximate stand-in: run them without it and say so in the provenance
            params.SetFluo(False)
            params.SetAuger(False)
            params.SetPixe(False)
            st["deexcitation"] = "off (approximate data)"
        rm.SetUserInitialization(physics_list)
        primary = Primary()
        event_action = EventAction()
        rm.SetUserAction(primary)
        rm.SetUserAction(event_action)
        rm.Initialize()
        sdm = g4.G4SDManager.GetSDMpointer()
        names = [f"{d}{si}/edep" for si in range(len(layouts)) for d in ("grid", "outside", "absorber")]
        names += [f"grid{si}/{p}" for si, lay in enumerate(layouts) if lay["fine"] for p in ("layer", "steps")]
        st["cid"] = {n: sdm.GetCollectionID(n) for n in names}
        st["job"] = None
        rm.BeamOn(0)  # builds the physics tables (prints a lot) while stdout is silenced
    st.update(rm=rm, detector=detector, primary=primary, event_action=event_action, physics_list=physics_list)
    st["ready"] = True
    return st


def _seed_engine(g4: Any, seed: int) -> list[int]:
    seeds = [int(s) & 0x7FFFFFFF for s in np.random.SeedSequence(int(seed)).generate_state(4)]
    seeds = [s if s else 1 for s in seeds]
    g4.HepRandom.setTheEngine(g4.MixMaxRng())
    g4.HepRandom.setTheSeeds(seeds + [0])
    return seeds


def simulate_showers(
    geometry: Geometry,
    particle: str,
    energies_mev: np.ndarray,
    seed: int,
    *,
    physics: str = "standard",
    production_cut_mm: float = 0.7,
    position_mm: tuple[float, float, float | None] = (0.0, 0.0, None),
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0),
    progress: Callable[[int], None] | None = None,
    quiet: bool = True,
) -> ShowerBatch:
    """Simulate one shower per entry of ``energies_mev`` with Geant4 (sequential run manager).

    Args:
        geometry: a regular geometry with a physical stack (``ds2``, ``ds3``, ``mini``, ...).
        particle: ``e-``, ``e+``, ``gamma`` (aliases ``electron``, ``positron``, ``photon``);
            ``pi+``/``pi-`` only with a hadronic reference list (``physics="FTFP_BERT"``).
        energies_mev: kinetic energy of the primary of each event, MeV.
        seed: random seed; the same seed (and inputs) gives identical bytes.
        physics: ``standard`` (``G4EmStandardPhysics``), ``option1``..``option4``, or a Geant4
            reference list name. On approximate EM data ``option3`` runs without atomic
            de-excitation and ``option4`` is refused; on approximate hadronic data only
            ``FTFP_BERT`` and ``QGSP_BERT`` run (:mod:`showerforge.simulate.g4hadronic`).
        production_cut_mm: production cut (range) for all particles, mm.
        position_mm: gun position; z = 0 is the calorimeter front face, ``None`` means 1 mm in
            front of it.
        direction: gun direction (normalised here).
        progress: called as ``progress(k)`` with the number of events done, every few events.
        quiet: silence Geant4's stdout while it initialises.

    Returns:
        A :class:`ShowerBatch`.

    Raises:
        GeometryError: irregular or material-less geometry.
        UserError: bad particle / physics / energies.
        RuntimeError: Geant4 was already set up in this process for another configuration.
    """
    name = PARTICLES.get(str(particle))
    if name is None:
        raise UserError(f"unknown particle {particle!r}: expected one of {sorted(PARTICLES)}")
    physics = str(physics)
    if name in HADRONS and physics in PHYSICS_EM:
        raise UserError(
            f"particle {particle!r} needs hadronic physics, but physics={physics!r} is electromagnetic only; "
            f"use a Geant4 reference list: {' or '.join(repr(p) for p in PHYSICS_HADRONIC)}"
        )
    energies = np.asarray(energies_mev, dtype=np.float64).reshape(-1)
    if energies.size and (not np.all(np.isfinite(energies)) or np.any(energies <= 0)):
        raise UserError("energies_mev must be finite and > 0 (MeV)")
    if not production_cut_mm > 0:
        raise UserError(f"production_cut_mm must be > 0, got {production_cut_mm}")
    d = np.asarray(direction, dtype=np.float64)
    if d.shape != (3,) or not np.linalg.norm(d) > 0:
        raise UserError(f"direction must be a non-zero 3-vector, got {direction}")
    d = d / np.linalg.norm(d)
    _check_geometry(geometry)

    key = _config_key(geometry, physics, production_cut_mm)
    if not _STATE:
        _build(geometry, physics, float(production_cut_mm), quiet)
    elif not _STATE.get("ready"):
        raise RuntimeError("Geant4 initialisation failed earlier in this process; start a fresh process")
    elif _STATE["key"] != key:
        raise RuntimeError(
            "Geant4 was already initialised in this process for another geometry/physics; "
            "run each configuration (shard) in a fresh process"
        )
    st = _STATE
    g4 = st["g4"]

    layouts = st["layouts"]
    fine = any(lay["fine"] for lay in layouts)
    n = int(energies.size)
    seeds = _seed_engine(g4, seed)
    gun = st["primary"].gun
    gun.SetParticleDefinition(g4.G4ParticleTable.GetParticleTable().FindParticle(name))
    x, y, z = position_mm
    z = -1.0 if z is None else float(z)
    gun.SetParticlePosition(g4.G4ThreeVector(float(x) * g4.mm, float(y) * g4.mm, z * g4.mm))
    gun.SetParticleMomentumDirection(g4.G4ThreeVector(*map(float, d)))

    n_cells = 0 if fine else st["n_phys"] * layouts[0]["n_alpha"] * layouts[0]["n_r"]
    grid = np.zeros((n, n_cells), dtype=np.float64)
    job: dict[str, Any] = {
        "energies": energies,
        "grid": grid,
        "hits": [],
        "layer_mev": np.zeros((n, st["n_phys"]) if fine else (0, 0)),
        "steps": np.zeros(n),
        "outside": np.zeros(n),
        "absorber": np.zeros(n),
        "sections": np.zeros((n, len(layouts), 3)),
        "progress": progress,
        "every": max(1, min(100, n // 20 or 1)),
        "n": n,
    }
    st["job"] = job
    try:
        if n:
            st["rm"].BeamOn(n)
    finally:
        st["job"] = None

    hits = None
    if fine:
        hits = _fine_hits(job["hits"], layouts, n, geometry.physical_per_readout)
        from showerforge.data.points import PointClouds, fine_hits_to_points, points_to_cells

        pts = fine_hits_to_points(geometry, hits["layer"], hits["row"], hits["col"], hits["mev"])
        cells = points_to_cells(PointClouds(pts, hits["offsets"], energies), geometry, threshold_mip=0.0)
        showers = cells.dense(np.float64)
    else:
        ppr = geometry.physical_per_readout
        n_alpha, n_r = layouts[0]["n_alpha"], layouts[0]["n_r"]
        showers = grid.reshape(n, geometry.n_layers, ppr, n_alpha * n_r).sum(axis=2).reshape(n, -1)
    provenance = {
        "engine": "geant4",
        **_geant4_version(g4),
        "geant4_pybind": _pybind_version(),
        "physics_list": st["physics_name"],
        "production_cut_mm": float(production_cut_mm),
        "particle": name,
        "seed": int(seed),
        "engine_seeds": seeds,
        "position_mm": [float(x), float(y), z],
        "direction": [float(v) for v in d],
        "geometry": geometry.name,
        **({"deexcitation": st["deexcitation"]} if "deexcitation" in st else {}),
        **{k: v for k, v in st["data_info"].items()},
    }
    return ShowerBatch(
        showers=showers.astype(np.float32),
        sensor_outside_mev=job["outside"],
        absorber_mev=job["absorber"],
        incident_mev=energies.copy(),
        provenance=provenance,
        hits=hits,
        layer_mev=job["layer_mev"] if fine else None,
        sensor_steps=job["steps"] if fine else None,
        section_mev=_section_sums(job, geometry) if len(layouts) > 1 else None,
    )


def _section_sums(job: dict[str, Any], geometry: Geometry) -> np.ndarray:
    """(N, n_sections, 3): each section's (sensor cells, sensor outside the cells, absorber) MeV."""
    sections = job["sections"].copy()
    per_layer = job["layer_mev"]  # (N, n_physical_layers): the sensor cells, summed by Geant4
    first = 0
    for si, sec in enumerate(geometry.stack):
        sections[:, si, 0] = per_layer[:, first : first + sec.n_layers].sum(axis=1)
        first += sec.n_layers
    return sections


def _fine_hits(events: list[tuple[int, int, np.ndarray, np.ndarray]], layouts: list[dict[str, Any]], n: int, ppr: int):
    """Sparse fine-square hits of all events, sorted by (event, layer, row, column)."""
    per_event: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(n)]
    for i, si, keys, vals in events:
        m = layouts[si]["n_r"]
        layer, rest = np.divmod(keys, m * m)
        row, col = np.divmod(rest, m)
        per_event[i].append((layer // ppr, row, col, vals))
    cols: list[list[np.ndarray]] = [[], [], [], []]
    counts = np.zeros(n, np.int64)
    for i, parts in enumerate(per_event):
        if not parts:
            continue
        arrs = [np.concatenate([p[c] for p in parts]) for c in range(4)]
        order = np.lexsort((arrs[2], arrs[1], arrs[0]))
        keep = arrs[3][order] > 0
        for c in range(4):
            cols[c].append(arrs[c][order][keep])
        counts[i] = int(keep.sum())
    cat = [np.concatenate(c) if c else np.zeros(0) for c in cols]
    return {
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "layer": cat[0].astype(np.int32),
        "row": cat[1].astype(np.int32),
        "col": cat[2].astype(np.int32),
        "mev": cat[3].astype(np.float32),
    }


def _geant4_version(g4: Any) -> dict[str, str]:
    text = str(getattr(g4, "G4Version", "")).strip("$ ").replace("Name: ", "")
    m = re.search(r"geant4-(\d+)-(\d+)(?:-patch-(\d+))?", text)
    short = f"{int(m.group(1))}.{int(m.group(2))}.{int(m.group(3) or 0)}" if m else text
    return {"geant4_version": short, "geant4_release": text}


def _pybind_version() -> str:
    try:
        from importlib.metadata import version

        return version("geant4-pybind")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"
