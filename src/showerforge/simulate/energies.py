"""Incident-energy specifications: ``10GeV``, ``1,10,100GeV``, ``1:100GeV`` with a spectrum."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from showerforge.errors import UserError

__all__ = ["EnergySpec", "parse_energy", "SPECTRA", "SHOWER_ENERGY_RANGE_MEV"]

_UNITS = {"kev": 1e-3, "mev": 1.0, "gev": 1e3, "tev": 1e6}
SPECTRA = ("fixed", "list", "uniform", "log-uniform")
SHOWER_ENERGY_RANGE_MEV = (1.0, 1e7)
"""Incident energies a shower campaign accepts, 1 MeV to 10 TeV: below 1 MeV a particle makes no
shower (and little or no energy reaches a sampling calorimeter's sensors); Geant4's standard EM
physics tables end at 100 TeV and one 10 TeV shower already takes minutes of CPU time."""


@dataclass(frozen=True)
class EnergySpec:
    """Incident energies to simulate, in MeV.

    Args:
        values_mev: one value (fixed), several (list) or two (range low, high).
        spectrum: ``fixed``, ``list`` (each event picks one value uniformly), ``uniform`` or
            ``log-uniform`` (between the two range values).
    """

    values_mev: tuple[float, ...]
    spectrum: str

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` energies (MeV, float64) with ``rng``."""
        v = np.asarray(self.values_mev, dtype=np.float64)
        if self.spectrum == "fixed":
            return np.full(n, v[0])
        if self.spectrum == "list":
            return v[rng.integers(0, len(v), size=n)]
        lo, hi = v
        if self.spectrum == "uniform":
            return rng.uniform(lo, hi, size=n)
        return np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))

    def check_range(self, lo_mev: float, hi_mev: float, what: str = "--energy") -> None:
        """Refuse values outside ``[lo_mev, hi_mev]`` (a :class:`UserError` that gives the range)."""
        for v in self.values_mev:
            if not lo_mev <= v <= hi_mev:
                side = "below" if v < lo_mev else "above"
                raise UserError(
                    f"{what} {_fmt_mev(v)}: {side} the allowed range {_fmt_mev(lo_mev)} to {_fmt_mev(hi_mev)} "
                    "of incident energies for showers"
                )

    def describe(self) -> str:
        """Human-readable form, e.g. ``log-uniform 1000-100000 MeV``."""
        vals = ",".join(f"{x:g}" for x in self.values_mev)
        sep = "-" if self.spectrum in ("uniform", "log-uniform") else ","
        return f"{self.spectrum} {vals.replace(',', sep)} MeV"


def _fmt_mev(value: float) -> str:
    """``2.5 GeV``, ``1e-30 MeV``: a value in MeV in the largest unit that keeps it >= 1."""
    for unit, scale in (("TeV", 1e6), ("GeV", 1e3), ("MeV", 1.0)):
        if abs(value) >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g} MeV"


_NOT_A_NUMBER = re.compile(r"[+-]?(nan|inf|infinity)([a-zA-Z]*)", re.IGNORECASE)


def parse_energy(text: str, spectrum: str | None = None) -> EnergySpec:
    """Parse an energy option.

    ``10GeV`` (fixed), ``1,10,100GeV`` (list), ``1:100GeV`` (range; spectrum ``log-uniform`` unless
    ``uniform`` is asked). A unit (keV, MeV, GeV, TeV) may follow each number or only the last one;
    a bare number is refused (``5`` could be MeV or GeV).

    Raises:
        UserError: with a message saying what was expected.
    """
    raw = text.strip().replace(" ", "")
    if not raw:
        raise UserError("energy is empty; expected e.g. 10GeV, 1,10,100GeV or 1:100GeV")
    is_range = ":" in raw
    parts = raw.split(":" if is_range else ",")
    for p in parts:
        if _NOT_A_NUMBER.fullmatch(p):
            raise UserError(
                f"energy {p!r} in {text!r} is not a number; expected a finite number with a unit, e.g. 10GeV"
            )
        if p.startswith("-") and re.fullmatch(r"-[0-9.]+(?:[eE][+-]?[0-9]+)?[a-zA-Z]*", p):
            raise UserError(f"energy {p!r} in {text!r} is negative; energies must be > 0, e.g. 10GeV")
    m_last = re.fullmatch(r"([0-9.eE+-]+)([a-zA-Z]*)", parts[-1])
    default_unit = m_last.group(2).lower() if m_last else ""
    if m_last and not default_unit:
        raise UserError(f"energy {text!r} has no unit; write e.g. {text}GeV or {text}MeV (keV, MeV, GeV, TeV)")
    values = []
    for p in parts:
        m = re.fullmatch(r"([0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", p)
        if not m:
            raise UserError(f"cannot read energy {p!r} in {text!r}; expected a number with a unit (MeV, GeV, TeV)")
        unit = (m.group(2) or default_unit).lower()
        if unit not in _UNITS:
            raise UserError(f"unknown energy unit {m.group(2)!r} in {text!r}; use keV, MeV, GeV or TeV")
        values.append(float(m.group(1)) * _UNITS[unit])
    if any(v <= 0 for v in values):
        raise UserError(f"energies must be > 0, got {text!r}")
    if is_range:
        if len(values) != 2 or values[0] >= values[1]:
            raise UserError(f"energy range {text!r} must be LOW:HIGH with LOW < HIGH")
        spec = spectrum or "log-uniform"
        if spec not in ("uniform", "log-uniform"):
            raise UserError(f"spectrum {spec!r} does not fit a range; use uniform or log-uniform")
    elif len(values) == 1:
        spec = spectrum or "fixed"
        if spec not in ("fixed", "list"):
            raise UserError(f"spectrum {spec!r} needs a range LOW:HIGH, got the single energy {text!r}")
        spec = "fixed"
    else:
        spec = spectrum or "list"
        if spec != "list":
            raise UserError(f"spectrum {spec!r} does not fit a list of energies; use list")
    return EnergySpec(tuple(values), spec)
