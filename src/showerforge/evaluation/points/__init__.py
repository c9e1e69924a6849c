"""Evaluation of point-cloud showers (the kind ``calo-points``).

Modules: :mod:`.observables` (points projected on cells above threshold; per-shower observables
and profiles), :mod:`.compare` (W1 x 100 of standardised observables, CaloClouds II; the
classifier test), :mod:`.settings` (the options), :mod:`.compute` (files in, numbers out),
:mod:`.plots`, :mod:`.summary` (table and page) and :mod:`.report`
(:func:`~showerforge.evaluation.points.report.evaluate_point_files`).
"""

from __future__ import annotations

__all__: list[str] = []
