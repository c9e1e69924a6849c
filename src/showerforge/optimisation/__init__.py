"""Detector optimisation through a design-conditioned surrogate, verified by Geant4 (``docs/optimise.md``).

``showerforge optimise --config OPT.toml -o OPT/`` and :func:`showerforge.api.optimise` run
:func:`runner.optimise_and_verify`: the loop (:mod:`loop`), the verification with fresh seeds
(:mod:`verify`) and the baselines at equal Geant4 budget (:mod:`baselines`). The package is not
called ``optimise``: a subpackage of that name would replace the function ``sf.optimise`` as an
attribute of ``showerforge`` once imported.
"""

from __future__ import annotations

from showerforge.optimisation.config import OptConfig, load_config, parse_config
from showerforge.optimisation.design import Design, DesignSpace
from showerforge.optimisation.loop import OptimiseResult, descend, optimise

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
