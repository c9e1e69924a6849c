"""Detector optimisation through a design-conditioned surrogate, verified by Geant4 (``docs/optimise.md``).

``showerforge optimise --config OPT.toml -o OPT/`` and :func:`showerforge.api.optimise` run
:func:`loop.optimise`; :mod:`verify` re-simulates designs with fresh seeds and runs the
baselines (random search, Optuna TPE) at equal Geant4 budget.
"""

from __future__ import annotations

from showerforge.optimise.config import OptConfig, load_config, parse_config
from showerforge.optimise.design import Design, DesignSpace
from showerforge.optimise.loop import OptimiseResult, descend, optimise

__all__ = [
    "OptConfig",
    "load_config",
    "parse_config",
    "Design",
    "DesignSpace",
    "OptimiseResult",
    "descend",
    "optimise",
]
