"""showerforge.evaluation: CaloChallenge-standard evaluation of shower files, JetNet-standard of jets.

Shared by both kinds: histogram distances with bootstrap errors (:mod:`.metrics`), the plots
(:mod:`.plots`), the HTML page (:mod:`.html`) and the report folder (:mod:`.output`: checked
before work, written whole or not at all). Showers (:mod:`.showers`): high-level features
(:mod:`.showers.features`), the CaloChallenge binnings (:mod:`.showers.binning`), the classifier
two-sample test (:mod:`.showers.classifier`) and the report (:func:`evaluate_files` with its
:class:`EvaluationSettings`, :func:`format_summary`). Jets (:mod:`.jets`): the JetNet metrics (:mod:`.jets.metrics`), how well two jet
samples are told apart and resonance mass peaks (:func:`type_separation_auc`, :func:`mass_window`) and the
report (:func:`evaluate_jet_files`, :func:`format_jet_summary`). :func:`detect_format` tells the two
kinds of file apart. Works on files alone; imports no model code. torch, scikit-learn, matplotlib
and jinja2 are imported only when a classifier is trained, a plot drawn or the HTML page rendered.
"""

from __future__ import annotations

from showerforge.evaluation.jets.report import JET_SCHEMA, evaluate_jet_files, format_jet_summary
from showerforge.evaluation.jets.separation import mass_window, type_separation_auc
from showerforge.evaluation.metrics import (
    Measurement,
    Resampler,
    separation_power,
    separation_power_counts,
    separation_power_from_hist,
    unit_histogram,
    wasserstein1,
)
from showerforge.evaluation.showers.classifier import (
    ClassifierConfig,
    ClassifierResult,
    classifier_test,
    classifier_test_indexed,
    high_level_inputs,
    low_level_inputs,
)
from showerforge.evaluation.showers.features import (
    PER_LAYER_FEATURES,
    PER_SHOWER_FEATURES,
    challenge_dataset,
    compute_features,
    default_threshold_mev,
    defined_layers,
    stream_features,
    voxel_histograms,
)
from showerforge.evaluation.showers.report import (
    SCHEMA,
    EvaluationSettings,
    compare_features,
    evaluate_files,
    format_summary,
)

__all__ = [
    "SCHEMA",
    "mass_window",
    "type_separation_auc",
    "EvaluationSettings",
    "evaluate_files",
    "format_summary",
    "compare_features",
    "compute_features",
    "stream_features",
    "voxel_histograms",
    "defined_layers",
    "challenge_dataset",
    "default_threshold_mev",
    "PER_SHOWER_FEATURES",
    "PER_LAYER_FEATURES",
    "Measurement",
    "Resampler",
    "separation_power",
    "separation_power_counts",
    "separation_power_from_hist",
    "unit_histogram",
    "wasserstein1",
    "ClassifierConfig",
    "ClassifierResult",
    "classifier_test",
    "classifier_test_indexed",
    "low_level_inputs",
    "high_level_inputs",
    "JET_SCHEMA",
    "evaluate_jet_files",
    "format_jet_summary",
]
