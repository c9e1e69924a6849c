"""Incident-energy specifications: ``10GeV``, ``1,10,100GeV``, ``1:100GeV`` with a spectrum."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from showerforge.errors import UserError

__all__ = ["EnergySpec", "parse_energy", "SPECTRA"]

_UNITS = {"kev": 1e-3, "mev": 1.0, "gev": 1e3, "tev": 1e6}
SPECTRA = ("fixed", "list", "uniform", "log-uniform")


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

    def describe(self) -> str:
        """Human-readable form, e.g. ``log-uniform 1000-100000 MeV``."""
        vals = ",".join(f"{x:g}" for x in self.values_mev)
        sep = "-" if self.spectrum in ("uniform", "log-uniform") else ","
        return f"{self.spectrum} {vals.replace(',', sep)} MeV"


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
