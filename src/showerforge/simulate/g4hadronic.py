"""Approximate stand-ins for the Geant4 11.4 hadronic data sets (no network access).

Companion of :mod:`showerforge.simulate.g4data`, which writes approximate low-energy EM tables:
this module writes the *minimum* files that the reference lists ``FTFP_BERT`` and ``QGSP_BERT``
read at initialisation and while they track a pion shower, when the real data sets
(G4PARTICLEXS, PhotonEvaporation, G4ENSDFSTATE) are absent. The tables are cached on disk beside
the approximate EM tables (``~/.cache/showerforge/g4hadronic-approx-v1``), written once and
atomically, and versioned by :data:`HADRONIC_APPROX_VERSION` (bump it when any table changes).

What Geant4 11.4 reads, and what is written here
-------------------------------------------------

G4PARTICLEXS (``G4PARTICLEXSDATA``), folder ``neutron/``:
    ``inel{Z}`` for Z = 1..92 (all of them: ``G4NeutronInelasticXS``'s constructor loads every
    element; a missing file is the fatal ``had014``), ``el{Z}`` and ``cap{Z}`` (loaded for the
    elements of the geometry; all 92 are written). Format: one ``G4PhysicsLogVector`` in ASCII
    (a line ``E_min E_max n``, a line ``n``, then ``n`` lines ``E sigma``), energies in MeV and
    exactly log-spaced, cross sections per atom in mm^2 (1 barn = 1e-22 mm^2). Isotope files
    (``inel{Z}_{A}``) and resonance files are optional and not written. Above the last energy of
    ``inel``/``el`` Geant4 uses its own Glauber-Gribov (GG) parametrisation scaled by
    ``table(E_max) / GG(E_max)``; the tables end at 20 MeV with the GG value of the formula
    below, so that scale stays close to 1. Checked with the transmission of neutrons through the
    84 mm of W (+ 15.75 mm Si) of ``ild-ecal`` (FTFP_BERT, 1500 neutrons each): inelastic
    n-W cross section 1.67 +- 0.06 b at 10 GeV (lambda = 95 +- 3 mm; PDG lambda_I = 99.46 mm,
    1.59 b) and 1.85 +- 0.06 b at 1 GeV.

    Approximations below 20 MeV: ``el``/``inel`` follow an independent implementation of the GG
    formula (Grichine, Eur. Phys. J. C 62 (2009) 399): R = 1.08 A^(1/3) fm (times a small A
    correction), sigma_NN from smooth fits of the low-energy np and nn (= pp) data,
    sigma_tot = 2 pi R^2 ln(1 + x), sigma_in = 2 pi R^2 ln(1 + 2.4 x) / 2.4 with
    x = sigma_hA / (2 pi R^2), times a smooth stand-in for Geant4's "Barashenkov" corrections
    (1.03-1.15); frozen below 0.1 MeV. The inelastic table is multiplied by a threshold turn-on
    1 - exp(-(E - E1) / 3 MeV), E1 = 20 MeV / A (roughly the first excited level), zero for H.
    No resonances. Compared with evaluated total cross sections at 14 MeV (C 1.30 b, Fe 2.5 b,
    Pb 5.4 b, n-p 0.69 b) these are 0 %, +13 %, +22 % and -14 % off. ``cap`` is a 1/v law from the thermal (25.3 meV) capture cross section (known
    values for the common calorimeter elements, 1 b otherwise), cut off as exp(-(E - 0.1 MeV) /
    1 MeV) above 0.1 MeV (Geant4 sets capture to zero above 20 MeV anyway).

    ``gamma/inel{Z}`` (``G4GammaNuclearXS``) is avoided, not written: the physics list is told to
    use the code-only CHIPS photo-nuclear cross section (``G4PhotoNuclearCrossSection``) with the
    UI command in :data:`UI_COMMANDS`, applied after the list exists and before ``Initialize``.

    Pion, proton, kaon and hyperon cross sections (Barashenkov-Glauber-Gribov) are code-only in
    Geant4 11.4 and need no file: the pion showers' first interactions are Geant4's own.

PhotonEvaporation (``G4LEVELGAMMADATA``): an empty folder. Only the variable must be set
    (``G4LevelReader`` aborts without it); a missing level file is "no discrete levels": nuclear
    de-excitation uses the continuum model only (no discrete gamma lines, no isomers, no
    internal-conversion electrons from tabulated levels).
G4ENSDFSTATE (``G4ENSDFSTATEDATA``): an empty ``ENSDFSTATE.dat`` (``G4NuclideTable`` aborts when
    the file is missing): no pre-defined excited or isomeric states, irrelevant without radioactive
    decay, which FTFP_BERT and QGSP_BERT do not use.
G4NDL, G4SAIDDATA, G4INCL, G4ABLA, RadioactiveDecay, ...: not read by FTFP_BERT / QGSP_BERT (only
    by ``*_HP``, INCLXX, ABLA, radioactive-decay lists, which are refused on approximate data).

Sensitivity (300 pi+ of 10 GeV per variant, FTFP_BERT, 30 x (2.1 mm W + 0.525 mm Si) + 48 x
(17 mm Fe + 3 mm polystyrene)): halving the neutron elastic and inelastic tables below 20 MeV
changes the visible energy by -6.0 +- 1.5 % and the deposited energy by -2.5 +- 1.2 %; removing
neutron capture by -3.6 +- 1.4 % and -3.1 +- 1.1 %. Both variations are far larger than the
tables' likely error, so the approximation matters at the level of a few per cent at most.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = [
    "HADRONIC_APPROX_VERSION",
    "APPROXIMATE_LISTS",
    "UI_COMMANDS",
    "HADRONIC_VARIABLES",
    "approximate_hadronic_environment",
    "build_hadronic_tables",
    "is_real_dataset",
    "gg_neutron_xs",
    "needed_datasets",
]

HADRONIC_APPROX_VERSION = "g4hadronic-approx-v1"
# the reference lists checked on these tables (pion pass-through law, energy sharing)
APPROXIMATE_LISTS: tuple[str, ...] = ("FTFP_BERT", "QGSP_BERT")
# after the physics list is constructed (its messengers exist), before G4RunManager.Initialize()
UI_COMMANDS: tuple[str, ...] = ("/physics_lists/em/UseGammaNuclearXS false",)
# data set -> variable, for the data sets the approximate lists read
HADRONIC_VARIABLES: dict[str, str] = {
    "G4PARTICLEXS": "G4PARTICLEXSDATA",
    "PhotonEvaporation": "G4LEVELGAMMADATA",
    "G4ENSDFSTATE": "G4ENSDFSTATEDATA",
}

_BARN_MM2 = 1e-22
_FM2_BARN = 0.01
_M_NEUTRON = 939.56542  # MeV
_Z_MAX = 92
_E_MIN = 1e-11  # MeV (1e-5 eV)
_E_MAX = 20.0  # MeV: the tables' end; above, Geant4 uses GG x table(E_max) / GG(E_max)
_PER_DECADE = 10

# standard atomic weights (rounded), Z = 1..92
_A = (
    1.008, 4.003, 6.94, 9.012, 10.81, 12.011, 14.007, 15.999, 18.998, 20.18,
    22.99, 24.305, 26.982, 28.085, 30.974, 32.06, 35.45, 39.95, 39.098, 40.078,
    44.956, 47.867, 50.942, 51.996, 54.938, 55.845, 58.933, 58.693, 63.546, 65.38,
    69.723, 72.63, 74.922, 78.971, 79.904, 83.798, 85.468, 87.62, 88.906, 91.224,
    92.906, 95.95, 98.0, 101.07, 102.91, 106.42, 107.87, 112.41, 114.82, 118.71,
    121.76, 127.6, 126.9, 131.29, 132.91, 137.33, 138.91, 140.12, 140.91, 144.24,
    145.0, 150.36, 151.96, 157.25, 158.93, 162.5, 164.93, 167.26, 168.93, 173.05,
    174.97, 178.49, 180.95, 183.84, 186.21, 190.23, 192.22, 195.08, 196.97, 200.59,
    204.38, 207.2, 208.98, 209.0, 210.0, 222.0, 223.0, 226.0, 227.0, 232.04,
    231.04, 238.03,
)  # fmt: skip

# thermal (25.3 meV) neutron capture cross sections per element, barn (common materials)
_CAPTURE_THERMAL_BARN = {
    1: 0.332, 5: 767.0, 6: 0.0035, 7: 1.9, 8: 0.0002, 9: 0.0096, 11: 0.53, 12: 0.063, 13: 0.231,
    14: 0.171, 17: 33.5, 18: 0.675, 20: 0.43, 22: 6.1, 24: 3.05, 25: 13.3, 26: 2.56, 27: 37.2,
    28: 4.49, 29: 3.78, 30: 1.11, 31: 2.9, 32: 2.2, 39: 1.28, 40: 0.185, 41: 1.15, 42: 2.48,
    47: 63.3, 48: 2520.0, 50: 0.626, 53: 6.15, 55: 29.0, 56: 1.1, 57: 8.97, 58: 0.63, 64: 49700.0,
    71: 84.0, 73: 20.6, 74: 18.3, 79: 98.65, 82: 0.171, 83: 0.034, 90: 7.37, 92: 7.57,
}  # fmt: skip

# ------------------------------------------------------------------------------------------------
# cross sections


def _plab_gev(ekin_mev: float, mass_mev: float) -> float:
    return math.sqrt(ekin_mev * (ekin_mev + 2.0 * mass_mev)) / 1000.0


def _sigma_np_mb(p: float) -> float:
    """n-p total cross section (mb) at lab momentum ``p`` (GeV/c, below 10 GeV/c): smooth fits of
    the PDG data (1/v-like rise below 20 MeV/c, a 33 mb plateau, the rise near 1 GeV/c)."""
    if p < 0.02:
        return 4100.0 + 30.0 * math.log(1.3 / p) ** 3.6
    if p < 0.8:
        return 33.0 + 30.0 * math.log(p / 1.3) ** 4
    if p < 1.4:
        return 33.0 + 30.0 * math.log(p / 0.95) ** 2
    return 33.3 + 20.8 * (p * p - 1.35) / (p**2.5 + 0.95)


def _sigma_nn_mb(p: float) -> float:
    """n-n (taken equal to p-p) total cross section (mb) at lab momentum ``p`` (GeV/c, below 10)."""
    if p < 0.73:
        return 23.0 + 50.0 * math.log(0.73 / p) ** 3.5
    if p < 1.05:
        return 23.0 + 40.0 * math.log(p / 0.73) ** 2
    return 39.0 + 75.0 * (p - 1.2) / (p**3 + 0.15)


def _barashenkov(z: int) -> tuple[float, float]:
    """Smooth stand-ins for Geant4's corrections of the GG (total, inelastic) cross sections."""
    if z < 2:
        return 1.0, 1.0
    return 1.03 + 0.08 * math.exp(-(((z - 30) / 35.0) ** 2)), 1.04 + 0.10 * math.exp(-(((z - 30) / 40.0) ** 2))


def _radius_fm(a: int) -> float:
    if a > 20:
        return 1.08 * a ** (1.0 / 3.0) * (0.8 + 0.2 * math.exp(-(a - 20) / 20.0))
    return 1.08 * a ** (1.0 / 3.0) * (1.0 + 0.1 * math.exp(-(a - 20) / 20.0))


def gg_neutron_xs(ekin_mev: float, z: int, a: float | None = None) -> tuple[float, float]:
    """Elastic and inelastic neutron-nucleus cross sections in the Glauber-Gribov form.

    Args:
        ekin_mev: neutron kinetic energy, MeV; an approximation from 0.1 MeV (frozen below) to a
            few GeV.
        z: atomic number, 1..92.
        a: mass number (default: the element's standard atomic weight, rounded).

    Returns:
        ``(elastic, inelastic)`` in barn per atom. For hydrogen the "nucleus" is the proton:
        elastic = total n-p, inelastic = 0.
    """
    a_int = max(1, int(round(_A[min(max(z, 1), _Z_MAX) - 1] if a is None else a)))
    p = _plab_gev(max(ekin_mev, 0.1), _M_NEUTRON)
    if a_int <= 1:
        return _sigma_np_mb(p) * 1e-3, 0.0
    sigma_hn = (z * _sigma_np_mb(p) + max(a_int - z, 0) * _sigma_nn_mb(p)) * 1e-3  # barn
    two_pi_r2 = 2.0 * math.pi * _radius_fm(a_int) ** 2 * _FM2_BARN
    x = sigma_hn / two_pi_r2
    corr_tot, corr_in = _barashenkov(z)
    total = two_pi_r2 * math.log1p(x) * corr_tot
    inelastic = two_pi_r2 * math.log1p(2.4 * x) / 2.4 * corr_in
    return max(total - inelastic, 0.0), inelastic


# ------------------------------------------------------------------------------------------------
# tables


def _log_grid() -> list[float]:
    n = int(round(math.log10(_E_MAX / _E_MIN) * _PER_DECADE)) + 1
    step = math.log(_E_MAX / _E_MIN) / (n - 1)
    return [_E_MIN * math.exp(i * step) for i in range(n)]


def _write_log_vector(path: Path, energies: list[float], barns: list[float]) -> None:
    """One ``G4PhysicsLogVector`` in Geant4's ASCII format (MeV, mm^2)."""
    lines = [f"{energies[0]:.12g} {energies[-1]:.12g} {len(energies)}", f"{len(energies)}"]
    lines += [f"{e:.12g} {s * _BARN_MM2:.8g}" for e, s in zip(energies, barns, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def _neutron_tables(z: int, energies: list[float]) -> dict[str, list[float]]:
    """The ``el``, ``inel`` and ``cap`` cross sections (barn) of element ``z`` on ``energies``."""
    a = _A[z - 1]
    e1 = max(0.05, 20.0 / a)  # onset of non-elastic reactions, MeV (~ the first excited level)
    el, inel = [], []
    for e in energies:
        s_el, s_in = gg_neutron_xs(e, z, a)
        turn_on = 0.0 if e <= e1 else 1.0 - math.exp(-(e - e1) / 3.0)
        el.append(s_el)
        inel.append(s_in * turn_on)
    inel[-1] = gg_neutron_xs(energies[-1], z, a)[1]  # exactly GG at 20 MeV: Geant4's scale ~ 1 above
    s_th = _CAPTURE_THERMAL_BARN.get(z, 1.0)
    cap = [s_th * math.sqrt(2.53e-8 / e) * (math.exp(-(e - 0.1)) if e > 0.1 else 1.0) for e in energies]
    return {"el": el, "inel": inel, "cap": cap}


def _write_tables(root: Path) -> None:
    """Write every table and stand-in folder into ``root`` (a fresh folder)."""
    neutron = root / "G4PARTICLEXS-approx" / "neutron"
    neutron.mkdir(parents=True)
    energies = _log_grid()
    for z in range(1, _Z_MAX + 1):
        for kind, barns in _neutron_tables(z, energies).items():
            _write_log_vector(neutron / f"{kind}{z}", energies, barns)
    (root / "G4PARTICLEXS-approx" / "APPROXIMATE").write_text(
        "Approximate neutron cross sections written by showerforge (Glauber-Gribov form, 1/v capture), "
        "NOT the Geant4 G4PARTICLEXS data set.\n"
    )
    (root / "PhotonEvaporation-empty").mkdir()
    (root / "ENSDFSTATE-empty").mkdir()
    (root / "ENSDFSTATE-empty" / "ENSDFSTATE.dat").write_text("")
    (root / "COMPLETE").write_text(json.dumps({"version": HADRONIC_APPROX_VERSION, "z_max": _Z_MAX}))


def build_hadronic_tables(root: str | os.PathLike[str]) -> Path:
    """Write the approximate hadronic tables at ``root`` unless they are there (atomic: a temporary
    folder beside it, then a rename; a concurrent builder that wins the race is accepted).

    Returns:
        ``root`` as a path.
    """
    root = Path(root)
    from showerforge.data.io import build_directory_once

    return build_directory_once(root, _write_tables)


# ------------------------------------------------------------------------------------------------
# environment and provenance

_STAND_IN = {
    "G4PARTICLEXSDATA": "G4PARTICLEXS-approx",
    "G4LEVELGAMMADATA": "PhotonEvaporation-empty",
    "G4ENSDFSTATEDATA": "ENSDFSTATE-empty",
}
_WHAT = {
    "G4PARTICLEXSDATA": (
        "hadronic_neutron_xs",
        "approximate neutron tables (elastic, inelastic, capture; Z = 1-92): Glauber-Gribov form "
        "below 20 MeV, 1/v capture, no resonances; above 20 MeV Geant4's Glauber-Gribov scaled to "
        "the tables' value at 20 MeV",
    ),
    "G4LEVELGAMMADATA": (
        "hadronic_nuclear_levels",
        "none: no discrete nuclear levels (PhotonEvaporation absent; continuum de-excitation only, "
        "no discrete gamma lines or isomers)",
    ),
    "G4ENSDFSTATEDATA": ("hadronic_nuclide_states", "none (G4ENSDFSTATE absent: empty ENSDFSTATE.dat)"),
}


def is_real_dataset(variable: str, path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds the real data set of ``variable`` (one of :data:`HADRONIC_VARIABLES`),
    not an empty or approximate stand-in (an earlier set-up of this process may have exported one)."""
    path = Path(path)
    if variable == "G4PARTICLEXSDATA":
        return (path / "neutron" / "inel1").is_file() and not (path / "APPROXIMATE").exists()
    if variable == "G4ENSDFSTATEDATA":
        data = path / "ENSDFSTATE.dat"
        return data.is_file() and data.stat().st_size > 0
    return path.is_dir() and any(path.iterdir())


def approximate_hadronic_environment(
    root: str | os.PathLike[str], missing: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Stand-ins for the hadronic data set variables in ``missing`` (of :data:`HADRONIC_VARIABLES`).

    Args:
        root: folder of the approximate tables (built here when needed).
        missing: the variables whose real data set was not found.

    Returns:
        ``(env, info)``: the variables to set before ``import geant4_pybind``, and provenance:
        ``hadronic_data = "approximate"``, the tables' version (``hadronic_tables``), the data sets
        replaced (``hadronic_missing_datasets``) and one entry per approximation
        (``hadronic_neutron_xs``, ``hadronic_gamma_nuclear_xs``, ``hadronic_nuclear_levels``,
        ``hadronic_nuclide_states``). Without ``missing``: ``{"hadronic_data": "geant4"}``.
    """
    if not missing:
        return {}, {"hadronic_data": "geant4"}
    root = build_hadronic_tables(root)
    env = {var: str(root / _STAND_IN[var]) for var in missing}
    names = [name for name, var in HADRONIC_VARIABLES.items() if var in missing]
    info = {
        "hadronic_data": "approximate",
        "hadronic_tables": HADRONIC_APPROX_VERSION,
        "hadronic_missing_datasets": ",".join(names),
    }
    if "G4PARTICLEXSDATA" in missing:
        info["hadronic_gamma_nuclear_xs"] = (
            "G4PhotoNuclearCrossSection (CHIPS, code-only) instead of G4GammaNuclearXS, which reads G4PARTICLEXS"
        )
    for var in missing:
        key, text = _WHAT[var]
        info[key] = text
    return env, info


def needed_datasets(physics: str) -> str:
    """The Geant4 data sets a hadronic reference list reads, as text for an error message."""
    name = physics.upper()
    needs = ["G4PARTICLEXS", "PhotonEvaporation", "G4ENSDFSTATE"]
    if "_HP" in name or name.startswith("SHIELDING"):
        needs.append("G4NDL")
    if "INCLXX" in name:
        needs += ["G4INCL", "G4ABLA"]
    if name.startswith(("SHIELDING", "LBE")) or "QBBC" in name:
        needs.append("RadioactiveDecay")
    return ", ".join(needs)
