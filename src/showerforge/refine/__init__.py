"""Correct mis-modelled events: flow-matching and normalizing-flow morphing, classifier reweighting.

``fit_refiner(source, target, folder, method="fm"|"flow"|"reweight", inputs=...)`` learns how
source events (a simulation, a fast surrogate) differ from target events (data, Geant4);
``apply_refiner(folder, input, output)`` writes refined showers / inputs or per-event weights.
``detector_response`` turns simulated showers into a realistic "data-like" readout (calibration,
electronic noise, zero suppression) for studies. See :mod:`showerforge.refine.core`.
"""

from showerforge.refine.core import (
    DEFAULT_INPUTS,
    METHODS,
    RefineError,
    Refiner,
    apply_refiner,
    fit_refiner,
    load_refiner,
)
from showerforge.refine.inputs import SHAPE_NAMES, Events, RefineInputError, load_events, shower_shapes
from showerforge.refine.toy import detector_response

__all__ = [
    "DEFAULT_INPUTS",
    "METHODS",
    "SHAPE_NAMES",
    "Events",
    "RefineError",
    "RefineInputError",
    "Refiner",
    "apply_refiner",
    "detector_response",
    "fit_refiner",
    "load_events",
    "load_refiner",
    "shower_shapes",
]
