"""showerforge: fast simulation for particle physics.

Geant4 / Pythia8 references, generative surrogates, CaloChallenge / JetNet evaluation.

The user's entry points live at the top (imported on first use, so ``import showerforge`` stays
light)::

    import showerforge as sf
    sf.simulate_showers(...), sf.simulate_jets(...), sf.train(...), sf.distill(...), sf.load(...), sf.generate_file(...), sf.evaluate(...)
    sf.export_onnx(...), sf.validate_run(...), sf.validation_history(...), sf.fit_refiner(...), sf.apply_refiner(...)
    sf.read_points(...), sf.to_cells(...), sf.to_voxels(...), sf.convert(...), sf.optimise(...)
"""

from __future__ import annotations

from typing import Any

from showerforge._version import __version__

__all__ = [
    "__version__",
    "simulate_showers",
    "simulate_jets",
    "train",
    "distill",
    "load",
    "generate_file",
    "evaluate",
    "shipped_models",
    "export_onnx",
    "validate_run",
    "validation_history",
    "fit_refiner",
    "apply_refiner",
    "read_points",
    "to_cells",
    "to_voxels",
    "convert",
    "optimise",
]

_API = set(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from showerforge import api

        return getattr(api, name)
    raise AttributeError(f"module 'showerforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
