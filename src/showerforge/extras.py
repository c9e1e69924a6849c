"""Which optional extra provides which import (the core install is numpy, h5py, scipy, click, rich).

``pip install 'showerforge[all]'`` installs every extra; the README's set-up commands do.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "missing_extra_message"]

EXTRAS: dict[str, str] = {
    "torch": "ml",
    "geant4_pybind": "geant4",
    "pythia8mc": "jets",
    "fastjet": "jets",
    "dask": "dask",
    "distributed": "dask",
    "matplotlib": "report",
    "sklearn": "report",
    "jinja2": "report",
    "onnx": "deploy",
    "onnxruntime": "deploy",
    "sqlalchemy": "validate",
    "uproot": "validate",
    "tomli": "validate",
    "zuko": "refine",
    "optuna": "optimise",
}
"""Top-level module name -> the extra that installs it."""


def missing_extra_message(err: ModuleNotFoundError) -> str | None:
    """A one-line fix for a missing optional dependency, or ``None`` when it is not an extra's."""
    top = (err.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return f"this needs the optional package {top!r}: pip install 'showerforge[{extra}]' (or showerforge[all])"
