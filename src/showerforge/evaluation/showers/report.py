"""CaloChallenge-standard evaluation of a candidate shower file against a reference file.

:func:`evaluate_files` reads the files in chunks (memory bounded by a chunk plus the small
per-shower features and one voxel buffer), computes the high-level features of
:mod:`showerforge.evaluation.showers.features`, and compares the candidate with the reference and,
as the floor (what statistics alone give), a second reference sample with the reference, at the
same sample sizes (``docs/evaluation.md``): by default the reference is split in two seeded halves
A and B, the candidate (subsampled to the size of B) meets A and the floor is B against A; with
``floor_reference`` the candidate meets the whole reference and the floor is that file against it.
It writes, into ``out_dir``:

* ``metrics.json`` (keys below);
* ``plots/*.png``: reference-vs-candidate histograms with ratio panels (``etot_over_einc``,
  ``voxel_energy``, and one grid per per-layer feature), ``response_vs_einc.png``,
  ``classifier_weights.png`` and, for regular readouts, ``mean_images.png``,
  ``layer_profile.png`` and ``radial_profile.png`` (mean energy per layer and per radial ring);
* ``index.html``: the verdict (headline metrics against their floors), the key plots, every
  summary metric, the per-histogram table (folded) and every plot.

Nothing is printed (``progress`` reports the long steps); :func:`format_summary` turns the returned
dict into a table for the CLI. The report is built in a staging folder and moved into place at the
end, so a failed or refused run leaves no output folder (and never ``metrics.json`` without
``index.html``); see :func:`showerforge.evaluation.output.report_folder`.

The work is split by kind: :mod:`.settings` (the options, :class:`EvaluationSettings`),
:mod:`.compute` (files in, numbers out), :mod:`.comparisons` (histograms, classifiers,
distances), :mod:`.plots` (matplotlib), :mod:`.summary` (tables and verdict) and :mod:`.page`
(``metrics.json`` and ``index.html``); this module only chains them.

``metrics.json`` keys (schema ``showerforge.evaluation/1``); every measurement is
``{"value": v, "error": e}`` with ``null`` where undefined (e.g. a histogram without entries inside
the challenge's fixed range, such as every E_tot/E_inc outside [0.5, 1.5]):

* ``schema``, ``showerforge_version``;
* ``reference`` / ``candidate`` / ``floor_reference`` (when given): ``path``, ``n_showers``
  (used), ``n_showers_in_file``, ``geometry_source``;
* ``geometry``: ``name``, ``n_layers``, ``n_voxels``, ``is_regular``, ``challenge_dataset``
  (``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"`` or null);
* ``settings``: ``seed``, ``quick``, ``threshold_mev``, ``n_bootstrap``, ``chunk``,
  ``max_showers``, ``floor`` (the rule in words), ``classifiers`` (some of ``"high_level"``,
  ``"low_level"``, ``"verdict"``), ``classifier_config``, ``verdict_config``, ``nplm`` (NPLM
  settings or null), ``low_level_showers_per_class``, ``low_level_memory_mb``, ``distances``
  (FPD/KPD/PRDC settings or null);
* ``candidate_vs_reference`` and ``reference_vs_reference`` (the floor), each with

  - ``n_showers``: ``[n_a, n_b]`` sample sizes compared;
  - ``separation_power`` and ``chi2_ndf``: ``etot_over_einc``, ``voxel_energy`` (separation
    power only) and, per per-layer feature (``layer_energy``, ``center_x``, ``center_y``,
    ``width_x``, ``width_y``, ``center_r``, ``width_r``, ``sparsity``), a dict
    ``{"<layer index>": measurement}`` over the layers where the feature is defined;
  - ``wasserstein``: the same keys except ``voxel_energy`` (W1 in the feature's unit: MeV, mm,
    dimensionless);
  - ``separation_power_mean`` / ``chi2_ndf_mean`` / ``wasserstein_mean``: per feature family
    the mean over layers (error: quadrature sum / count), and ``all`` (mean over every histogram);
  - ``classifier``: ``high_level`` / ``low_level`` / ``verdict`` → ``{"auc", "jsd"}``
    measurements, ``n_per_class``, ``runs``, and ``skipped`` (null, or the reason);
  - ``classifier_weights`` (verdict classifier, see :func:`classifier_weights`);
  - ``distances``: ``fpd``, ``kpd`` (unscaled; the summary prints them x 1e3) and ``prdc``
    (``precision``, ``recall``, ``density``, ``coverage``, ``n_per_sample``);
  - ``nplm``: ``t``, ``p_value``, ``z``, ``n_toys``, ``null_median``, ``null_quantiles_16_84``,
    ``sizes`` (candidate block); the floor block holds the median of the null toys.

The low-level classifier and PRDC hold voxel rows in one float32 buffer: each sample is limited to
``low_level_memory_mb / (3 * 4 bytes * (n_voxels + 1))`` showers (seeded subsample; 1 GB gives
about 13,800 dataset-2 or 2,200 dataset-3 showers per sample). Histograms use the CaloChallenge
binnings (:mod:`showerforge.evaluation.showers.binning`), with edges from the whole reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from showerforge.evaluation.output import check_output_dir, report_folder
from showerforge.evaluation.showers.comparisons import compare_features
from showerforge.evaluation.showers.compute import SCHEMA, check_inputs, compute_evaluation
from showerforge.evaluation.showers.features import FEATURE_LABELS
from showerforge.evaluation.showers.page import write_report
from showerforge.evaluation.showers.plots import draw_plots
from showerforge.evaluation.showers.plots import profile_panels as _profiles  # noqa: F401 (its name before the split)
from showerforge.evaluation.showers.settings import EvaluationSettings, Progress
from showerforge.evaluation.showers.summary import format_summary

__all__ = [
    "SCHEMA",
    "EvaluationSettings",
    "evaluate_files",
    "format_summary",
    "compare_features",
    "FEATURE_LABELS",
]


def evaluate_files(
    reference: str | Path,
    candidate: str | Path,
    out_dir: str | Path,
    settings: EvaluationSettings | None = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a candidate shower file against a reference file (see module docstring).

    Options come as one :class:`EvaluationSettings` or as its fields by name
    (``floor_reference``, ``geometry``, ``quick``, ``seed``, ``max_showers``, ``chunk``,
    ``threshold_mev``, ``n_bootstrap``, ``classifiers``, ``classifier_config``, ``distances``,
    ``nplm_toys``, ``fpd_extrapolation``, ``low_level_memory_mb``, ``plots``); names given
    override ``settings``.

    Args:
        reference: CaloChallenge-format HDF5 file of reference (e.g. Geant4) showers.
        candidate: file of candidate (generated) showers with the same readout.
        out_dir: output folder: ``metrics.json``, ``index.html``, ``plots/``; created (with its
            parents) only when the report is complete.
        settings: every option at once (default: :class:`EvaluationSettings` defaults).
        progress: called as ``progress(step, done, total)`` during every long step (reading
            the files, classifier epochs, bootstrap, NPLM toys).
        **options: fields of :class:`EvaluationSettings` by name.

    Returns:
        the content of ``metrics.json`` as a dict.

    Raises:
        CaloFileError: a file is unreadable or not clean (NaN, inf, negative energies), holds too
            few showers, or the readouts differ (naming both files and both geometries).
        OutputPathError: ``out_dir`` cannot be created or written.
        UserError: invalid options.
        TypeError: an unknown option name.
    """
    cfg = (settings or EvaluationSettings()).with_options(**options)
    cfg.check()
    out = check_output_dir(out_dir)
    check_inputs(reference, candidate, cfg)
    result = compute_evaluation(reference, candidate, cfg, progress)
    with report_folder(out) as stage:
        plots = draw_plots(stage, result) if cfg.plots else []
        write_report(stage, result.metrics, plots)
    return result.metrics
