"""Analyses: functions that turn a sample (showers or jets) into named observables, Rivet-like.

An analysis is a Python function ``analysis(sample) -> list[Observable]``. Each
:class:`Observable` carries one value per event (a histogram is booked from it; the binning comes
from the reference sample, so every version of a candidate is histogrammed identically) or one row
per event (a *profile*: the mean of each column with its standard error, e.g. the longitudinal
energy profile). The same function runs on the reference and on the candidate.

Built-in analyses (names used in a suite's ``[analyses] use = [...]``):

showers (:class:`ShowerSample`)
    ``calo_energy``: E_tot / E_inc, E_tot (GeV), the energy of every layer (MeV, log bins).
    ``calo_shapes``: per layer: energy-weighted centre and width in r (mm), sparsity.
    ``calo_profiles``: longitudinal profile (mean energy per layer, MeV) and radial profile
    (mean energy per radial bin, summed over layers and angles, MeV).

point clouds (:class:`~showerforge.data.points.PointClouds`; cells above 0.5 MIP, see
:mod:`showerforge.evaluation.points.observables`)
    ``points_energy``: E_vis / E_inc, hits per shower, cell energies (MeV, log bins, pooled).
    ``points_shapes``: centre of gravity in x, y and z (mm).
    ``points_profiles``: longitudinal profiles (mean energy and mean hits per layer) and radial
    profile (mean energy per ring of one cell width around the beam axis, all layers).

jets (:class:`JetSample`)
    ``jet_substructure``: relative jet mass (from the constituents), constituent multiplicity
    (``jet_features``, before truncation), constituents kept, N-subjettiness ratios tau21 and tau32
    (exclusive-kT axes, beta = 1, R0 = 0.8).
    ``jet_kinematics``: jet pT (GeV) and eta (``jet_features``).
    ``jet_particles``: eta_rel, phi_rel, pT_rel of all constituents and of the leading one.
    ``jet_efps``: the five connected d <= 4, n = 4 EFPs of the W1EFP metric (jetnet convention).

A suite adds its own analyses with ``modules = ["my_analyses.py:photon_shapes"]`` (a file relative
to the suite, or an importable ``package.module:function``).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.evaluation.jets.sample import JetSample
from showerforge.evaluation.showers.sample import ShowerSample
from showerforge.validate.histograms import Hist1D, fill, profile, reference_edges

__all__ = [
    "ANALYSES",
    "JetSample",
    "Observable",
    "ShowerSample",
    "book",
    "default_analyses",
    "load_analysis",
    "run_analyses",
]


@dataclass
class Observable:
    """Values of one observable for every event of a sample.

    Attributes:
        name: unique name within a suite (letters, digits, ``_``, ``.``, ``-``).
        values: (N,) one value per event, or (N, k) for a profile over k bins.
        title: human title.
        xlabel: axis label with unit.
        log: logarithmic bins (positive values only).
        integer: unit bins centred on integers (multiplicities).
        profile: ``values`` are (N, k) rows; the mean per column is compared.
        edges: fixed bin edges (else from the reference, see :func:`reference_edges`).
        bins: number of bins when the edges come from the reference (default: the suite's).
    """

    name: str
    values: np.ndarray
    title: str = ""
    xlabel: str = ""
    log: bool = False
    integer: bool = False
    profile: bool = False
    edges: np.ndarray | None = None
    bins: int | None = None


# ----------------------------------------------------------------------------- shower analyses


def calo_energy(sample: ShowerSample) -> list[Observable]:
    f = sample.features
    obs = [
        Observable("etot_over_einc", f["etot_over_einc"], "E_tot / E_inc", "E_tot / E_inc"),
        Observable("etot", f["etot"] / 1e3, "total deposited energy", "E_tot [GeV]", log=True),
    ]
    for i in range(f["layer_energy"].shape[1]):
        e = f["layer_energy"][:, i]
        if np.any(np.isfinite(e)):
            obs.append(Observable(f"layer_energy_{i}", e, f"energy in layer {i}", "E [MeV]", log=True))
    return obs


def calo_shapes(sample: ShowerSample) -> list[Observable]:
    f = sample.features
    obs = []
    for i in range(f["center_r"].shape[1]):
        for key, label in (
            ("center_r", "<r> [mm]"),
            ("width_r", "sigma_r [mm]"),
            ("sparsity", "fraction of hit voxels"),
        ):
            v = f[key][:, i]
            if np.any(np.isfinite(v)):
                obs.append(Observable(f"{key}_{i}", v, f"{key.replace('_', ' ')} in layer {i}", label))
    return obs


def calo_profiles(sample: ShowerSample) -> list[Observable]:
    le = np.nan_to_num(np.asarray(sample.features["layer_energy"], np.float64))
    return [
        Observable("longitudinal_profile", le, "mean energy per layer", "layer", profile=True),
        Observable(
            "radial_profile",
            sample.radial_energy,
            "mean energy per radial bin (all layers)",
            "radial bin",
            profile=True,
        ),
    ]


# ----------------------------------------------------------------------------- point-cloud analyses


def _points(sample: Any) -> Any:
    from showerforge.evaluation.points.observables import observe

    return observe(sample)


def points_energy(sample: Any) -> list[Observable]:
    o = _points(sample)
    return [
        Observable(
            "e_vis_over_e_inc", o.scalars["e_vis_over_e_inc"], "visible energy / incident energy", "E_vis / E_inc"
        ),
        Observable("n_hits", o.scalars["n_hits"], "hits per shower (cells above 0.5 MIP)", "hits"),
        Observable("cell_energy", o.cell_energy, "cell energies (all showers)", "E_cell [MeV]", log=True),
    ]


def points_shapes(sample: Any) -> list[Observable]:
    s = _points(sample).scalars
    return [Observable(k, s[k], f"centre of gravity {k[-1]}", f"{k[-1]} [mm]") for k in ("cog_x", "cog_y", "cog_z")]


def points_profiles(sample: Any) -> list[Observable]:
    o = _points(sample)
    width = min(lay.crystal_mm for lay in sample.geometry.readout)
    ring = np.floor(o.radii_mm / width + 0.5).astype(np.int64)
    onehot = np.zeros((len(ring), int(ring.max()) + 1 if ring.size else 1))
    onehot[np.arange(len(ring)), ring] = 1.0
    rings = o.radial_energy @ onehot
    return [
        Observable("longitudinal_energy", o.layer_energy, "mean energy per layer", "layer", profile=True),
        Observable("longitudinal_hits", o.layer_hits, "mean hits per layer", "layer", profile=True),
        Observable("radial_energy", rings, f"mean energy per ring of {width:g} mm (all layers)", "ring", profile=True),
    ]


# ----------------------------------------------------------------------------- jet analyses


def jet_substructure(sample: JetSample) -> list[Observable]:
    from showerforge.evaluation.jets.metrics import relative_jet_mass
    from showerforge.evaluation.jets.nsubjettiness import nsubjettiness, tau_ratios
    from showerforge.simulate.calo_g4 import quiet_stdout

    with quiet_stdout():  # FastJet prints its banner on the first clustering
        taus = tau_ratios(nsubjettiness(sample.particle_features, 3))
    return [
        Observable("jet_mass", relative_jet_mass(sample.particle_features), "relative jet mass", "m_jet / pT_jet"),
        Observable(
            "multiplicity",
            sample.jet_features[:, 3],
            "constituent multiplicity (before truncation to n)",
            "constituents",
            integer=True,
        ),
        Observable("n_kept", sample.mask.sum(axis=1), "constituents kept (at most n)", "constituents", integer=True),
        Observable("tau21", taus["tau21"], "N-subjettiness ratio tau2/tau1", "tau_21", edges=np.linspace(0, 1.2, 31)),
        Observable("tau32", taus["tau32"], "N-subjettiness ratio tau3/tau2", "tau_32", edges=np.linspace(0, 1.2, 31)),
    ]


def jet_kinematics(sample: JetSample) -> list[Observable]:
    jf = sample.jet_features
    return [
        Observable("jet_pt", jf[:, 0], "jet transverse momentum", "pT [GeV]"),
        Observable("jet_eta", jf[:, 1], "jet pseudorapidity", "eta"),
    ]


def jet_particles(sample: JetSample) -> list[Observable]:
    p, m = sample.particle_features, sample.mask
    return [
        Observable("eta_rel", p[..., 0][m], "constituent eta_rel", "eta_rel"),
        Observable("phi_rel", p[..., 1][m], "constituent phi_rel", "phi_rel"),
        Observable("pt_rel", p[..., 2][m], "constituent pT_rel", "pT_rel", log=True),
        Observable("leading_pt_rel", p[:, 0, 2], "leading constituent pT_rel", "pT_rel"),
    ]


def jet_efps(sample: JetSample) -> list[Observable]:
    from showerforge.evaluation.jets.metrics import efps

    values = np.asarray(efps(sample.particle_features))
    return [
        Observable(f"efp_{k}", values[:, k], f"EFP {k} (d <= 4, connected)", f"EFP {k}", log=True)
        for k in range(values.shape[1])
    ]


Analysis = Callable[[Any], Sequence[Observable]]

#: built-in analyses by name: (kind, function)
ANALYSES: dict[str, tuple[str, Analysis]] = {
    "calo_energy": ("calo-voxels", calo_energy),
    "calo_shapes": ("calo-voxels", calo_shapes),
    "calo_profiles": ("calo-voxels", calo_profiles),
    "points_energy": ("calo-points", points_energy),
    "points_shapes": ("calo-points", points_shapes),
    "points_profiles": ("calo-points", points_profiles),
    "jet_substructure": ("jet-set", jet_substructure),
    "jet_kinematics": ("jet-set", jet_kinematics),
    "jet_particles": ("jet-set", jet_particles),
    "jet_efps": ("jet-set", jet_efps),
}


def default_analyses(kind: str) -> list[str]:
    """The built-in analyses of a kind of data (its name or an alias)."""
    from showerforge.kinds import get_kind

    name = get_kind(kind).name
    return [a for a, (k, _) in ANALYSES.items() if k == name]


def load_analysis(spec: str, base: Path, where: str) -> Analysis:
    """``file.py:function`` (relative to ``base``) or ``package.module:function``."""
    mod_name, sep, fn_name = spec.rpartition(":")
    if not sep or not mod_name or not fn_name:
        raise UserError(f"{where}: {spec!r}: expected FILE.py:FUNCTION or package.module:FUNCTION")
    if mod_name.endswith(".py"):
        path = (base / mod_name).resolve()
        if not path.is_file():
            raise UserError(f"{where}: {spec!r}: no file {path}")
        module_spec = importlib.util.spec_from_file_location(f"showerforge_suite_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise UserError(f"{where}: {spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(mod_name)
        except ImportError as err:
            raise UserError(f"{where}: {spec!r}: cannot import {mod_name} ({err})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise UserError(f"{where}: {spec!r}: {mod_name} has no function {fn_name!r}")
    return fn


def run_analyses(analyses: dict[str, Analysis], sample: Any) -> dict[str, tuple[str, Observable]]:
    """Every observable of every analysis: name -> (analysis name, observable)."""
    out: dict[str, tuple[str, Observable]] = {}
    for name, fn in analyses.items():
        result = fn(sample)
        if not isinstance(result, list | tuple) or not all(isinstance(o, Observable) for o in result):
            raise UserError(f"analysis {name!r}: must return a list of showerforge.validate.Observable")
        for o in result:
            if o.name in out:
                raise UserError(f"analysis {name!r}: observable {o.name!r} is also booked by {out[o.name][0]!r}")
            out[o.name] = (name, o)
    return out


def book(analysis: str, ref: Observable, cand: Observable | None, bins: int) -> tuple[Hist1D, Hist1D | None]:
    """Histograms (or profiles) of the reference and the candidate on the reference's binning."""
    meta: dict[str, Any] = {"title": ref.title, "xlabel": ref.xlabel, "analysis": analysis}
    if ref.profile:
        hr = profile(ref.name, ref.values, ref.edges, **meta)
        hc = None if cand is None else profile(ref.name, cand.values, ref.edges, **meta)
        return hr, hc
    if ref.edges is not None:
        edges = np.asarray(ref.edges, np.float64)
    else:
        edges = reference_edges(ref.values, ref.bins or bins, log=ref.log, integer=ref.integer)
    hr = fill(ref.name, ref.values, edges, logx=ref.log, **meta)
    hc = None if cand is None else fill(ref.name, cand.values, edges, logx=ref.log, **meta)
    return hr, hc
