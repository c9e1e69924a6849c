"""Evaluation of jet files (JetNet conventions, arXiv:2211.10295).

Modules: :mod:`.metrics` (W1M, W1P, W1EFP, FPD, KPD and their plots), :mod:`.separation` (how
well a classifier tells two jet samples apart, e.g. generated g from t; resonance mass windows),
:mod:`.nsubjettiness` and :mod:`.report`
(:func:`~showerforge.evaluation.jets.report.evaluate_jet_files`: ``metrics.json``, plots, HTML
page). The public names are re-exported by :mod:`showerforge.evaluation`.
"""

from __future__ import annotations

__all__: list[str] = []
