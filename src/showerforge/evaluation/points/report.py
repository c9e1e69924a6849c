"""Evaluation of a candidate point-cloud file against a reference (the kind ``calo-points``).

:func:`evaluate_point_files` projects the points of every shower onto the geometry's cells with
the readout threshold (:mod:`.observables`), compares the candidate with the reference by W1 x 100
of standardised observables and a classifier test (:mod:`.compare`), and the floor (an
independent Geant4 sample, or the other half of the reference) with the reference at the same
sample sizes (:mod:`.compute`). It writes, into ``out_dir``:

* ``metrics.json`` (keys below);
* ``plots/<observable>.png``: reference-vs-candidate histograms with ratio panels, one per
  observable (:mod:`.plots`);
* ``index.html``: every metric beside its floor with a verdict, and the plots (:mod:`.summary`).

Bad input is refused before any file is read whole and before anything is written: a missing
file, a file that is not a point-cloud file (e.g. a voxel file), a file without a geometry or with
another geometry than the reference, NaN, infinite or negative values (one line naming the file
and the field). The report is built in a staging folder and moved into place at the end
(:func:`showerforge.evaluation.output.report_folder`).

``metrics.json`` (schema ``showerforge.evaluation.points/1``); every measurement is
``{"value": v, "error": e}``, ``null`` where undefined:

* ``schema``, ``showerforge_version``;
* ``reference`` / ``candidate`` / ``floor_reference`` (when given): ``path``, ``n_showers``
  (read), ``n_showers_in_file``;
* ``geometry``: ``name``, ``n_layers``, ``n_cells``, ``cell_mm``, ``stack``;
* ``settings``: ``seed``, ``quick``, ``max_samples``, ``threshold_mip``, ``threshold_mev`` (per
  layer), ``n_bootstrap``, ``floor`` (the rule in words), ``w1x100`` (the definition in words),
  ``classifier_config`` (null without the classifier);
* ``candidate_vs_reference`` and ``reference_vs_reference`` (the floor), each with
  ``n_showers`` (``[reference side, other]``), ``w1x100`` (one measurement per observable of
  :data:`~.observables.OBSERVABLES`), ``w1x100_mean`` and ``classifier`` (``auc``, ``jsd``,
  ``n_per_class``, ``runs``, ``skipped``: null or the reason);
* ``plots``: ``{"file", "caption"}`` per PNG written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from showerforge.evaluation.output import check_output_dir, report_folder
from showerforge.evaluation.points.compute import SCHEMA, check_inputs, compute_evaluation
from showerforge.evaluation.points.settings import PointSettings, Progress
from showerforge.evaluation.points.summary import format_points_summary, write_report

__all__ = ["SCHEMA", "PointSettings", "evaluate_point_files", "format_points_summary"]


def evaluate_point_files(
    reference: str | Path,
    candidate: str | Path,
    out_dir: str | Path,
    settings: PointSettings | None = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a candidate point-cloud file against a reference file (see module docstring).

    Args:
        reference: point-cloud file of reference (Geant4) showers.
        candidate: point-cloud file of candidate (generated) showers of the same geometry.
        out_dir: output folder (``metrics.json``, ``index.html``, ``plots/``), created only when
            the report is complete.
        settings: every option at once (default: :class:`PointSettings` defaults).
        progress: called as ``progress(step, done, total)`` during the long steps.
        **options: fields of :class:`PointSettings` by name (``floor_reference``, ``seed``,
            ``quick``, ``max_samples``, ``threshold_mip``, ``n_bootstrap``, ``classifier``,
            ``classifier_config``, ``repeats``, ``plots``); they override ``settings``.

    Returns:
        the content of ``metrics.json`` as a dict.

    Raises:
        PointsFileError: a bad file (see module docstring), naming the file and the field.
        OutputPathError: ``out_dir`` cannot be created or written.
        UserError: invalid options; the floor file is the reference itself.
        TypeError: an unknown option name.
    """
    cfg = (settings or PointSettings()).with_options(**options)
    out = check_output_dir(out_dir)
    paths = {"reference": reference, "candidate": candidate}
    if cfg.floor_reference is not None:
        paths["floor_reference"] = cfg.floor_reference
    checked = check_inputs(paths, cfg)
    result = compute_evaluation(paths, checked, cfg, progress)
    metrics = result.metrics
    with report_folder(out) as stage:
        metrics["plots"] = []
        if cfg.plots:
            from showerforge.evaluation.points.plots import draw_plots

            metrics["plots"] = draw_plots(stage, result.reference, result.candidate, metrics)
        metrics = json.loads(json.dumps(metrics))  # plain JSON types, as read back from disk
        write_report(stage, metrics)
    return metrics
