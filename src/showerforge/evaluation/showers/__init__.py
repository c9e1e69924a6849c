"""Evaluation of shower files (CaloChallenge 2022 conventions).

Modules: :mod:`.features` (high-level shower features, streamed), :mod:`.binning` (the challenge's
histogram binnings), :mod:`.classifier` (the classifier two-sample test) and the report:
:mod:`.report` (:func:`~showerforge.evaluation.showers.report.evaluate_files`: ``metrics.json``,
plots, HTML page) chaining :mod:`.settings` (the options), :mod:`.compute` (the numbers),
:mod:`.comparisons` (histograms, classifiers, distances), :mod:`.plots`, :mod:`.summary` (tables,
verdict) and :mod:`.page` (the files).
The public names are re-exported by :mod:`showerforge.evaluation`.
"""

from __future__ import annotations

__all__: list[str] = []
