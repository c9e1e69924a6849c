"""Deployment: ONNX export of trained shower models and an onnxruntime generation backend.

* :func:`export_onnx` writes a model's sampler (the ODE solver unrolled) and its inverse
  preprocessing as one ONNX graph, whose output is in physical units: the ``calochallenge``
  layout (noise + incident energy in MeV -> showers in MeV, CaloChallenge voxel order) or the
  calling conventions of Geant4's example Par04 (``par04``, ``par04-calodit``); jet models in
  ``jetnet``; point-cloud models in ``points`` (:class:`PointGraph`: noise + incident energy ->
  calibrated points, the shower flow, the decoding of its summaries and the calibrations inside).
* :class:`OnnxShowerSampler` runs such a graph in onnxruntime with the noise PyTorch would draw
  (``showerforge generate --backend onnxruntime``).

``docs/deploy.md`` describes the graphs' inputs, outputs and units and how to run a file in Par04.
"""

from __future__ import annotations

from showerforge.deploy.export import DEFAULT_OPSET, FORMATS, LAYOUTS, ExportResult, export_onnx, onnx_bytes
from showerforge.deploy.graph import InversePreprocessing, ShowerGraph, check_par04_geometry, par04_order
from showerforge.deploy.points import PointGraph, points_difference
from showerforge.deploy.runtime import OnnxShowerSampler, execution_providers, make_session

__all__ = [
    "export_onnx",
    "onnx_bytes",
    "ExportResult",
    "LAYOUTS",
    "FORMATS",
    "DEFAULT_OPSET",
    "InversePreprocessing",
    "ShowerGraph",
    "PointGraph",
    "points_difference",
    "check_par04_geometry",
    "par04_order",
    "OnnxShowerSampler",
    "execution_providers",
    "make_session",
]
