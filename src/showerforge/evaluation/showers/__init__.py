"""Evaluation of shower files (CaloChallenge 2022 conventions).

Modules: :mod:`.features` (high-level shower features, streamed), :mod:`.binning` (the challenge's
histogram binnings), :mod:`.classifier` (the classifier two-sample test) and :mod:`.report`
(:func:`~showerforge.evaluation.showers.report.evaluate_files`: ``metrics.json``, plots, HTML page).
The public names are re-exported by :mod:`showerforge.evaluation`.
"""

from __future__ import annotations

__all__: list[str] = []
