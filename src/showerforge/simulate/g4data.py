"""Geant4 data sets without network access.

``geant4_pybind`` checks at import time whether Geant4's data sets are installed and, when one
is missing, asks on the terminal whether to download it (with ``CI=true`` it downloads without
asking, which fails offline). Its EM physics constructors then read a handful of low-energy
tables from ``G4LEDATA``. This module decides, *before* ``geant4_pybind`` is imported, where
every data set variable points:

* **real data** when it can be found: the dataset variables already in the environment,
  ``GEANT4_DATA_DIR``, or geant4-pybind's own download folder (``~/.geant4_pybind``);
  provenance ``physics_data = "geant4"``;
* otherwise **approximate low-energy tables** built here from textbook physics and cached on
  disk (``$SHOWERFORGE_G4DATA`` or ``~/.cache/showerforge/g4data-approx-v1``); a
  ``UserWarning`` mentioning "approximate" is emitted and the provenance says
  ``physics_data = "approximate"``.

The approximate tables cover exactly what ``G4EmStandardPhysics`` (options 0-4 need the same
files plus ``fluor/binding.dat``) reads for electromagnetic showers:

``brem_SB/br{Z}``
    Seltzer-Berger scaled bremsstrahlung cross section chi(kappa, ln T) = (beta^2/Z^2) k dsigma/dk
    in mb, a ``G4Physics2DVector`` text file (``type nx ny``, x nodes, y nodes, values row by
    row in y). Here: Bethe-Heitler with Thomas-Fermi screening (Butcher-Messel screening
    functions), electron-electron term as Z(Z+1), Coulomb correction at high energy.
``epics2017/phot/pe-cs-{Z}.dat``, ``pe-high-{Z}.dat``, ``pe-low-{Z}.dat``
    Livermore photo-effect: a ``G4PhysicsVector`` ASCII file of sigma*E^3 (MeV, barn*MeV^3)
    between the (single) shell binding energy and the fit threshold, and one-shell fit files
    (``n_shells n_shells_used E_threshold`` then ``E_bind a1..a6``; sigma = a1/E + ... ).
    Here: an empirical Z^4.2 / E^(2.9...1) cross section with a K edge (jump 5).
``epics2017/rayl/re-cs-{Z}.dat``
    Livermore Rayleigh: ``G4PhysicsVector`` ASCII of sigma*E^2 in Geant4 internal units
    (mm^2 MeV^2; *not* barn). Here: Z^2 Thomson with a form-factor cut-off E_c ~ Z^(1/3).
``fluor/binding.dat``
    shell binding energies for ``G4ShellData`` (one K-like shell per element).

Hadronic reference lists (``FTFP_BERT``, ``QGSP_BERT``) also read G4PARTICLEXS, PhotonEvaporation
and G4ENSDFSTATE; ``ensure_geant4_env(hadronic=True)`` points those variables at approximate
stand-ins from :mod:`showerforge.simulate.g4hadronic` where the real data sets are not found
(provenance ``hadronic_data = "approximate"``). Without ``hadronic=True`` nothing changes for EM
physics.

Call :func:`ensure_geant4_env` before ``import geant4_pybind``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import warnings
from pathlib import Path

from showerforge.simulate import g4hadronic

__all__ = ["geant4_environment", "ensure_geant4_env", "APPROX_VERSION", "DATASETS"]

APPROX_VERSION = "g4data-approx-v1"

# (name, version geant4-pybind 0.1.3 / Geant4 11.4 expects, environment variable)
DATASETS: tuple[tuple[str, str, str], ...] = (
    ("G4NDL", "4.7.1", "G4NEUTRONHPDATA"),
    ("G4EMLOW", "8.8", "G4LEDATA"),
    ("PhotonEvaporation", "6.1.2", "G4LEVELGAMMADATA"),
    ("RadioactiveDecay", "6.1.2", "G4RADIOACTIVEDATA"),
    ("G4PARTICLEXS", "4.2", "G4PARTICLEXSDATA"),
    ("G4PII", "1.3", "G4PIIDATA"),
    ("RealSurface", "2.2", "G4REALSURFACEDATA"),
    ("G4SAIDDATA", "2.0", "G4SAIDXSDATA"),
    ("G4ABLA", "3.3", "G4ABLADATA"),
    ("G4INCL", "1.3", "G4INCLDATA"),
    ("G4ENSDFSTATE", "3.0", "G4ENSDFSTATEDATA"),
    ("G4CHANNELING", "2.0", "G4CHANNELINGDATA"),
    # read by Geant4 11.2+ (not checked by geant4-pybind's import-time prompt)
    ("G4NUDEXLIB", "1.0", "G4NUDEXLIBDATA"),
    ("G4URRPT", "1.1", "G4URRPTDATA"),
)
_REQUIRED_FOR_EM = ("G4LEDATA",)
_Z_MAX = 100

# ------------------------------------------------------------------------------------------------
# locating real data


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)) or (0,)


def _find_dataset(base: Path, name: str) -> Path | None:
    """The highest-version directory ``{name}{version}`` under ``base`` (None if absent)."""
    if not base.is_dir():
        return None
    hits = [p for p in base.iterdir() if p.is_dir() and re.fullmatch(re.escape(name) + r"[\d.]+", p.name)]
    if not hits:
        return None
    return max(hits, key=lambda p: _version_key(p.name[len(name) :]))


def _is_real_emlow(path: Path) -> bool:
    return (path / "brem_SB").is_dir() and not (path / "APPROXIMATE").exists()


def _search_bases() -> list[Path]:
    bases = []
    if os.environ.get("GEANT4_DATA_DIR"):
        bases.append(Path(os.environ["GEANT4_DATA_DIR"]))
    home = Path(os.path.expanduser("~"))
    bases.append(home / ".geant4_pybind")  # geant4-pybind's download folder
    if os.environ.get("HOME"):
        bases.append(Path(os.path.realpath(os.environ["HOME"])) / ".geant4_pybind")
    out: list[Path] = []
    for b in bases:
        if b not in out:
            out.append(b)
    return out


def _real_data() -> dict[str, Path]:
    """Dataset variable -> real directory, for every data set that can be found."""
    found: dict[str, Path] = {}
    for name, _version, var in DATASETS:
        value = os.environ.get(var)
        if value and Path(value).is_dir():
            found[var] = Path(value)
            continue
        for base in _search_bases():
            hit = _find_dataset(base, name)
            if hit is not None:
                found[var] = hit
                break
    if "G4LEDATA" in found and not _is_real_emlow(found["G4LEDATA"]):
        del found["G4LEDATA"]
    return found


# ------------------------------------------------------------------------------------------------
# approximate tables

_ALPHA = 1.0 / 137.035999
_ME = 0.51099895  # MeV
_FOUR_ALPHA_RE2_MB = 4.0 * _ALPHA * (2.8179403262e-13) ** 2 / 1e-27  # 4 alpha r_e^2 in mb
_BARN_MM2 = 1e-22  # 1 barn in Geant4 internal units (mm^2)

# Seltzer-Berger nodes: kappa = k/T (as in the G4EMLOW files) and ln(T/MeV), T = 1 keV .. 10 GeV.
_SB_X = (
    1e-12,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.55,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.925,
    0.95,
    0.97,
    0.99,
    0.995,
    0.999,
    0.9995,
    0.9999,
    0.99995,
    0.99999,
    1.0,
)
_SB_LOG10_T = tuple(-3.0 + 7.0 * i / 56 for i in range(57))


def _coulomb_correction(z: int) -> float:
    a2 = (_ALPHA * z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)


def _sb_chi(z: int, t_mev: float, kappa: float) -> float:
    """Scaled bremsstrahlung cross section chi = k dsigma/dk / Z^2 in mb (screened Bethe-Heitler).

    The beta^2 factor of the Seltzer-Berger definition is left out on purpose: the Born
    approximation underestimates the cross section of slow electrons by about 1/beta^2, and the
    true chi is nearly flat in T down to keV energies.
    """
    e = t_mev + _ME
    k = max(kappa, 1e-12) * t_mev
    ep = max(e - k, _ME)
    eps = ep / e
    z13 = z ** (1.0 / 3.0)
    gamma = 100.0 * _ME * k / (e * ep * z13)
    if gamma <= 1.0:
        phi1 = 20.867 - 3.242 * gamma + 0.625 * gamma * gamma
        phi2 = 20.209 - 1.930 * gamma - 0.086 * gamma * gamma
    else:
        phi1 = phi2 = 21.12 - 4.184 * math.log(gamma + 0.952)
    # Coulomb correction only for relativistic electrons (it is a high-energy correction)
    fc = _coulomb_correction(z) * min(1.0, max(0.0, (t_mev - 5.0) / 45.0))
    lz = math.log(z) / 3.0
    b1 = max(phi1 / 4.0 - lz - fc, 0.0)
    b2 = max(phi2 / 4.0 - lz - fc, 0.0)
    bracket = (1.0 + eps * eps) * b1 - (2.0 / 3.0) * eps * b2
    return max(_FOUR_ALPHA_RE2_MB * (1.0 + 1.0 / z) * bracket, 1e-3)


def _write_sb(path: Path, z: int) -> None:
    lines = [f"0 {len(_SB_X)} {len(_SB_LOG10_T)}", " ".join(f"{x:.12g}" for x in _SB_X)]
    lines.append(" ".join(f"{lt * math.log(10):.10g}" for lt in _SB_LOG10_T))
    for lt in _SB_LOG10_T:
        t = 10.0**lt
        lines.append(" ".join(f"{_sb_chi(z, t, x):.6g}" for x in _SB_X))
    path.write_text("\n".join(lines) + "\n")


def _k_edge_mev(z: int) -> float:
    return 0.96 * 13.6e-6 * (z - 1) ** 2


def _photo_sigma_barn(z: int, e: float) -> float:
    """Empirical photo-absorption cross section per atom (barn) at photon energy e (MeV).

    sigma = 1300 b (Z/74)^4.2 at 100 keV above the K edge (XCOM: W 1300 b, Pb 1900 b, Si 1.4 b),
    falling as E^-2.9 below 0.3 MeV, E^-2 to 1 MeV, E^-1.3 to 5 MeV; the K edge is a jump of 5.
    """
    s = 1300.0 * (z / 74.0) ** 4.2
    if e < 0.3:
        s *= (0.1 / e) ** 2.9
    else:
        s *= (0.1 / 0.3) ** 2.9
        if e < 1.0:
            s *= (0.3 / e) ** 2.0
        else:
            s *= (0.3 / 1.0) ** 2.0 * (1.0 / e) ** 1.3
    if z > 2 and e < _k_edge_mev(z):
        s /= 5.0
    return s


_PE_BIND = 1e-3  # MeV: single "shell" binding energy (lower end of the tables)
_PE_HIGH = 5.0  # MeV: above, sigma = a1/E


def _write_photo(d: Path, z: int) -> None:
    n = 240
    es = [_PE_BIND * (_PE_HIGH / _PE_BIND) ** (i / (n - 1)) for i in range(n)]
    ek = _k_edge_mev(z)
    if z > 2 and _PE_BIND < ek < _PE_HIGH:
        es = sorted([e for e in es if abs(e / ek - 1) > 1e-4] + [ek * (1 - 1e-6), ek * (1 + 1e-6)])
    pts = [(e, _photo_sigma_barn(z, e) * e**3) for e in es]
    body = [f"{es[0]:.10g} {es[-1]:.10g} {len(es)}", f"{len(es)}"]
    body += [f"{e:.10g} {v:.8g}" for e, v in pts]
    (d / f"pe-cs-{z}.dat").write_text("\n".join(body) + "\n")
    a1 = _photo_sigma_barn(z, _PE_HIGH) * _PE_HIGH
    fit = f"1 1 {_PE_HIGH:.10g}\n{_PE_BIND:.10g} {a1:.8g} 0 0 0 0 0\n"
    (d / f"pe-high-{z}.dat").write_text(fit)
    (d / f"pe-low-{z}.dat").write_text(fit)


def _write_rayleigh(d: Path, z: int) -> None:
    ec = 1.67e-3 * z ** (1.0 / 3.0)  # MeV
    s0 = z * z * 0.6652458732  # barn, coherent Thomson on the whole atom
    n = 200
    es = [1e-4 * (1e9) ** (i / (n - 1)) for i in range(n)]  # 100 eV .. 100 GeV
    body = [f"{es[0]:.10g} {es[-1]:.10g} {n}", f"{n}"]
    for e in es:
        sigma_mm2 = s0 / (1.0 + (e / ec) ** 2) * _BARN_MM2
        body.append(f"{e:.10g} {sigma_mm2 * e * e:.8g}")
    (d / f"re-cs-{z}.dat").write_text("\n".join(body) + "\n")


def _write_binding(path: Path) -> None:
    rows = []
    for z in range(1, 105):
        rows.append(f"0 {max(_k_edge_mev(z), 13.6e-6 * z * z if z <= 2 else 0.0):.8g}")
        rows.append("-1 -1")
    rows.append("-2 -2")
    path.write_text("\n".join(rows) + "\n")


def _build_approx(root: Path) -> None:
    """Write the approximate tables into ``root`` (a fresh directory)."""
    em = root / "G4EMLOW-approx"
    for sub in ("brem_SB", "epics2017/phot", "epics2017/rayl", "fluor"):
        (em / sub).mkdir(parents=True, exist_ok=True)
    for z in range(1, _Z_MAX + 1):
        _write_sb(em / "brem_SB" / f"br{z}", z)
        _write_photo(em / "epics2017" / "phot", z)
        _write_rayleigh(em / "epics2017" / "rayl", z)
    _write_binding(em / "fluor" / "binding.dat")
    (em / "APPROXIMATE").write_text(
        "Approximate low-energy EM tables written by showerforge (textbook physics), NOT the Geant4 G4EMLOW data set.\n"
    )
    (root / "ENSDFSTATE").mkdir()
    (root / "ENSDFSTATE" / "ENSDFSTATE.dat").write_text("")
    (root / "empty").mkdir()
    (root / "COMPLETE").write_text(json.dumps({"version": APPROX_VERSION, "z_max": _Z_MAX}))


def _approx_root() -> Path:
    env = os.environ.get("SHOWERFORGE_G4DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "showerforge" / APPROX_VERSION


def _ensure_approx(root: Path) -> Path:
    """Build the approximate tables at ``root`` unless present (atomic: temp dir, then rename)."""
    from showerforge.data.io import build_directory_once

    return build_directory_once(root, _build_approx)


# ------------------------------------------------------------------------------------------------
# public API


def _hadronic_root() -> Path:
    """Folder of the approximate hadronic tables: beside the approximate EM tables."""
    return _approx_root().parent / g4hadronic.HADRONIC_APPROX_VERSION


def _with_hadronic(env: dict[str, str], info: dict[str, str], real: dict[str, Path]) -> None:
    """Point the hadronic data set variables at their real data set, else at an approximate stand-in."""
    missing = []
    for var in g4hadronic.HADRONIC_VARIABLES.values():
        if var in real and g4hadronic.is_real_dataset(var, real[var]):
            env[var] = str(real[var])
        else:
            missing.append(var)
    had_env, had_info = g4hadronic.approximate_hadronic_environment(_hadronic_root(), missing)
    env.update(had_env)
    info.update(had_info)


def geant4_environment(hadronic: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """Environment variables to set before ``import geant4_pybind``, and provenance.

    Args:
        hadronic: also set up what hadronic reference lists read: the real data sets where they
            are found, else approximate stand-ins (``info["hadronic_data"]``, see
            :func:`showerforge.simulate.g4hadronic.approximate_hadronic_environment`).

    Returns:
        ``(env, info)``: ``env`` maps every data set variable Geant4 11.4 reads (and
        ``GEANT4_DATA_DIR``, which stops geant4-pybind's download prompt) to a directory;
        ``info`` has ``physics_data`` (``"geant4"`` or ``"approximate"``), ``G4LEDATA`` and, for
        real data, the data set versions. Builds the approximate tables when needed.
    """
    real = _real_data()
    env: dict[str, str] = {}
    info: dict[str, str] = {}
    if all(v in real for v in _REQUIRED_FOR_EM):
        empty = None
        for name, _version, var in DATASETS:
            if var in real:
                env[var] = str(real[var])
                info[name] = real[var].name[len(name) :] if real[var].name.startswith(name) else str(real[var])
        missing = [var for _n, _v, var in DATASETS if var not in real]
        if missing:
            # stand-ins so that nothing prompts; EM physics does not read these
            empty = _ensure_approx(_approx_root())
            for var in missing:
                env[var] = str(empty / ("ENSDFSTATE" if var == "G4ENSDFSTATEDATA" else "empty"))
            info["missing_datasets"] = ",".join(missing)
        env["GEANT4_DATA_DIR"] = os.environ.get("GEANT4_DATA_DIR") or str(real["G4LEDATA"].parent)
        info["physics_data"] = "geant4"
        info["G4LEDATA"] = env["G4LEDATA"]
        if hadronic:
            _with_hadronic(env, info, real)
        return env, info

    root = _ensure_approx(_approx_root())
    for _name, _version, var in DATASETS:
        env[var] = str(root / "empty")
    env["G4LEDATA"] = str(root / "G4EMLOW-approx")
    env["G4ENSDFSTATEDATA"] = str(root / "ENSDFSTATE")
    env["GEANT4_DATA_DIR"] = os.environ.get("GEANT4_DATA_DIR") or str(root)
    info = {
        "physics_data": "approximate",
        "G4LEDATA": env["G4LEDATA"],
        "approximate_tables": APPROX_VERSION,
        "note": "real Geant4 data sets not found; low-energy EM tables approximated from textbook physics",
    }
    if hadronic:
        _with_hadronic(env, info, real)
    return env, info


_warned = False
_warned_hadronic = False


def ensure_geant4_env(hadronic: bool = False) -> dict[str, str]:
    """Point every Geant4 data set variable somewhere usable (``os.environ``); return provenance.

    Must run before ``import geant4_pybind``. Emits a ``UserWarning`` containing "approximate"
    when the real data sets are not available (once for the EM tables, once for the hadronic ones).

    Args:
        hadronic: also set up the data sets hadronic reference lists read (see
            :func:`geant4_environment`).

    Raises:
        RuntimeError: ``geant4_pybind`` was already imported with a different data setup.
    """
    global _warned, _warned_hadronic
    env, info = geant4_environment(hadronic)
    if "geant4_pybind" in sys.modules:
        wrong = [k for k, v in env.items() if k != "GEANT4_DATA_DIR" and os.environ.get(k) != v]
        if wrong:
            raise RuntimeError(
                "geant4_pybind was imported before showerforge.simulate.g4data.ensure_geant4_env(); "
                f"Geant4 already read {wrong[0]}={os.environ.get(wrong[0])!r}. Call ensure_geant4_env() first."
            )
    os.environ.update(env)
    if info["physics_data"] == "approximate" and not _warned:
        _warned = True
        warnings.warn(
            "Geant4 data sets (G4EMLOW ...) not found: using approximate low-energy EM tables "
            f"from {env['G4LEDATA']}. Showers are physically sensible but not identical to "
            "Geant4 with its real data; install the data (GEANT4_DATA_DIR) for reference samples.",
            UserWarning,
            stacklevel=2,
        )
    if info.get("hadronic_data") == "approximate" and not _warned_hadronic:
        _warned_hadronic = True
        warnings.warn(
            f"Geant4 hadronic data sets ({info['hadronic_missing_datasets']}) not found: using approximate "
            f"stand-ins ({info['hadronic_tables']}: neutron cross sections, no discrete nuclear levels). "
            "Hadron showers are physically sensible but not identical to Geant4 with its real data.",
            UserWarning,
            stacklevel=2,
        )
    return info
