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

Nothing is printed; :func:`format_summary` turns the returned dict into a table for the CLI.

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

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.calo import CaloFile, CaloFileError, atomic_output, require_clean
from showerforge.data.io import check_writable_dir
from showerforge.errors import UserError
from showerforge.evaluation.metrics import (
    Measurement,
    Resampler,
    chi2_ndf,
    format_measurement,
    separation_power,
    separation_power_counts,
    unit_histogram,
    wasserstein1,
)
from showerforge.evaluation.nplm import NPLMConfig
from showerforge.evaluation.showers.binning import feature_edges
from showerforge.evaluation.showers.classifier import (
    ClassifierConfig,
    ClassifierResult,
    classifier_test_indexed,
    high_level_inputs,
    low_level_inputs,
    verdict_inputs,
)
from showerforge.evaluation.showers.features import (
    PER_LAYER_FEATURES,
    auto_chunk,
    challenge_dataset,
    default_threshold_mev,
    defined_layers,
    stream_features,
    voxel_histograms,
)
from showerforge.geometry import Geometry

__all__ = ["SCHEMA", "evaluate_files", "format_summary", "compare_features", "FEATURE_LABELS"]

SCHEMA = "showerforge.evaluation/1"
#: Axis labels (with units) of the features.
FEATURE_LABELS: dict[str, str] = {
    "etot_over_einc": "E_tot / E_inc",
    "voxel_energy": "voxel energy [MeV]",
    "layer_energy": "layer energy [MeV]",
    "center_x": "centre in x [mm]",
    "center_y": "centre in y [mm]",
    "width_x": "width in x [mm]",
    "width_y": "width in y [mm]",
    "center_r": "centre in r [mm]",
    "width_r": "width in r [mm]",
    "sparsity": "fraction of empty voxels",
}
_CLASSIFIERS = ("high_level", "low_level", "verdict")
WEIGHT_EDGES = np.linspace(-3.0, 3.0, 31)
"""Bins of log10 w for the classifier-weight histograms."""
WEIGHT_TAIL = 1.0
"""A weight is extreme when |log10 w| > 1 (w > 10 or w < 0.1)."""
PRDC_K = 5
"""Nearest neighbours of PRDC (the CaloChallenge's ``--prdc_k`` default)."""
PRDC_EMPTY_MEV = 0.1
"""Empty voxels enter PRDC's log10 voxel energies as 0.1 MeV, as in the CaloChallenge."""
Progress = Callable[[str, int, int], None]


# ----------------------------------------------------------------------------- comparisons
def _edges_for(geometry: Geometry, dataset: str | None, ref: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    """Bin edges of every histogram: name -> edges, per-layer name -> {layer: edges}."""
    edges: dict[str, Any] = {"etot_over_einc": feature_edges("etot_over_einc", geometry, dataset)}
    for name in PER_LAYER_FEATURES:
        per = {}
        for layer in defined_layers(geometry, name):
            kw: dict[str, float] = {}
            if name == "layer_energy":
                col = ref[name][:, layer].astype(np.float64)
                pos = col[col > 0]
                kw = {
                    "reference_max": float(col.max()) if col.size else math.nan,
                    "reference_min_positive": float(pos.min()) if pos.size else math.nan,
                }
            per[int(layer)] = feature_edges(name, geometry, dataset, layer=int(layer), threshold_mev=threshold, **kw)
        edges[name] = per
    return edges


def _mean_of(ms: Sequence[Measurement]) -> Measurement:
    vals = [m for m in ms if m.value is not None]
    if not vals:
        return Measurement(None, None)
    value = float(np.mean([m.value for m in vals]))
    errs = [m.error for m in vals if m.error is not None]
    err = math.sqrt(sum(e * e for e in errs)) / len(vals) if len(errs) == len(vals) else None
    return Measurement(value, err)


def compare_features(
    ref: dict[str, np.ndarray],
    cand: dict[str, np.ndarray],
    geometry: Geometry,
    edges: dict[str, Any],
    *,
    voxel_counts: tuple[np.ndarray, np.ndarray] | None = None,
    n_bootstrap: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Separation power and W1 of every feature between two feature sets.

    Args:
        ref, cand: feature dicts of :func:`showerforge.evaluation.showers.features.compute_features`.
        geometry: the readout.
        edges: bin edges (``etot_over_einc``, ``voxel_energy`` arrays; per-layer dicts).
        voxel_counts: per-shower voxel-energy histograms (n, B), (m, B) on ``edges["voxel_energy"]``.
        n_bootstrap: bootstrap replicas for the errors.
        seed: bootstrap seed.

    Returns:
        ``{"n_showers", "separation_power", "wasserstein", "chi2_ndf", "separation_power_mean",
        "wasserstein_mean", "chi2_ndf_mean"}`` with :class:`Measurement` values (see module docstring).
    """
    n_ref, n_cand = len(ref["etot"]), len(cand["etot"])
    rs = Resampler(n_ref, n_cand, n_bootstrap, seed)
    sep: dict[str, Any] = {}
    w1: dict[str, Any] = {}
    chi2: dict[str, Any] = {}
    sep["etot_over_einc"] = separation_power(
        ref["etot_over_einc"], cand["etot_over_einc"], edges["etot_over_einc"], resampler=rs
    )
    chi2["etot_over_einc"] = chi2_ndf(
        ref["etot_over_einc"], cand["etot_over_einc"], edges["etot_over_einc"], resampler=rs
    )
    w1["etot_over_einc"] = wasserstein1(ref["etot_over_einc"], cand["etot_over_einc"], resampler=rs)
    if voxel_counts is not None:
        sep["voxel_energy"] = separation_power_counts(*voxel_counts, resampler=rs)
    else:
        sep["voxel_energy"] = Measurement(None, None)
    for name in PER_LAYER_FEATURES:
        sep[name], w1[name], chi2[name] = {}, {}, {}
        for layer in defined_layers(geometry, name):
            e = edges[name].get(int(layer))
            r, c = ref[name][:, layer], cand[name][:, layer]
            sep[name][str(layer)] = separation_power(r, c, e, resampler=rs) if e is not None else Measurement(None)
            chi2[name][str(layer)] = chi2_ndf(r, c, e, resampler=rs) if e is not None else Measurement(None)
            w1[name][str(layer)] = wasserstein1(r, c, resampler=rs)
    sep_mean = {k: (v if isinstance(v, Measurement) else _mean_of(list(v.values()))) for k, v in sep.items()}
    every = [sep["etot_over_einc"], sep["voxel_energy"]] + [m for k in PER_LAYER_FEATURES for m in sep[k].values()]
    sep_mean["all"] = _mean_of(every)
    w1_mean = {k: (v if isinstance(v, Measurement) else _mean_of(list(v.values()))) for k, v in w1.items()}
    chi2_mean = {k: (v if isinstance(v, Measurement) else _mean_of(list(v.values()))) for k, v in chi2.items()}
    chi2_mean["all"] = _mean_of([chi2["etot_over_einc"]] + [m for k in PER_LAYER_FEATURES for m in chi2[k].values()])
    return {
        "n_showers": [n_ref, n_cand],
        "separation_power": sep,
        "wasserstein": w1,
        "chi2_ndf": chi2,
        "separation_power_mean": sep_mean,
        "wasserstein_mean": w1_mean,
        "chi2_ndf_mean": chi2_mean,
    }


def _take(features: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in features.items()}


def _to_json(obj: Any) -> Any:
    if isinstance(obj, Measurement):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


# ----------------------------------------------------------------------------- streaming passes
class _Pass:
    """Per-chunk accumulators: mean shower, extreme voxels, low-level rows, voxel histograms.

    ``rows`` (sorted file rows) go to ``buffer[slots]`` as low-level classifier inputs.
    """

    def __init__(
        self,
        n_voxels: int,
        threshold: float,
        rows: np.ndarray,
        slots: np.ndarray,
        buffer: np.ndarray | None,
        voxel_edges: np.ndarray | None,
        progress: Progress | None,
        stage: str,
        total: int,
    ) -> None:
        self.sum = np.zeros(n_voxels)
        self.min_positive = math.inf
        self.threshold = threshold
        order = np.argsort(rows, kind="stable")
        self.rows, self.slots, self.buffer = np.asarray(rows)[order], np.asarray(slots)[order], buffer
        self.edges = voxel_edges
        self.counts: list[np.ndarray] = []
        self.progress, self.stage, self.total, self.done = progress, stage, total, 0

    def __call__(self, lo: int, inc: np.ndarray, sh: np.ndarray) -> None:
        kept = np.where((sh < self.threshold) | (sh < 0), 0.0, sh)
        self.sum += kept.sum(axis=0, dtype=np.float64)
        pos = kept[kept > 0]
        if pos.size:
            self.min_positive = min(self.min_positive, float(pos.min()))
        if self.buffer is not None and self.rows.size:
            a, b = np.searchsorted(self.rows, [lo, lo + len(inc)])
            if b > a:
                sel = self.rows[a:b] - lo
                self.buffer[self.slots[a:b]] = low_level_inputs(inc[sel], sh[sel], threshold_mev=self.threshold)
        if self.edges is not None:
            self.counts.append(voxel_histograms(kept, self.edges, threshold_mev=self.threshold))
        self.done += len(inc)
        if self.progress is not None:
            self.progress(self.stage, self.done, self.total)


def _voxel_pass(
    f: CaloFile, n: int, chunk: int, threshold: float, edges: np.ndarray, progress: Progress | None
) -> np.ndarray:
    """Per-shower voxel-energy histograms (n, B) of the first ``n`` showers of ``f``."""
    counts = []
    for lo in range(0, n, chunk):
        _, sh = f.read(lo, min(lo + chunk, n))
        counts.append(voxel_histograms(sh, edges, threshold_mev=threshold))
        if progress is not None:
            progress("reference voxel histogram", min(lo + chunk, n), n)
    return np.concatenate(counts) if counts else np.zeros((0, len(edges) - 1), np.int32)


# ----------------------------------------------------------------------------- main entry
def _subsample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``rows`` (all when there are no more), sorted; seeded."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))


def _distance_settings(quick: bool, n: int) -> dict[str, int]:
    """FPD / KPD settings: the CaloChallenge's (``min_samples=10000``, ``batch_size=10000``) or quick."""
    if quick:
        size = max(2, min(1000, n))
        return {
            "min_samples": size,
            "max_samples": 5 * size,
            "num_batches": 5,
            "num_points": 5,
            "kpd_batches": 5,
            "kpd_size": size,
        }
    return {
        "min_samples": 10_000,
        "max_samples": 50_000,
        "num_batches": 20,
        "num_points": 10,
        "kpd_batches": 10,
        "kpd_size": 10_000,
    }


def _distances(
    high: np.ndarray,
    base: np.ndarray,
    other: np.ndarray,
    low: np.ndarray | None,
    low_base: np.ndarray,
    low_other: np.ndarray,
    settings: dict[str, int],
    prdc_rows: int,
    seed: int,
    extrapolation: str,
) -> dict[str, Any]:
    """FPD and KPD on the high-level inputs, PRDC (k = 5) on log10 voxel energies."""
    from showerforge.evaluation.distances import fpd, kpd, prdc

    x, y = high[base], high[other]
    out: dict[str, Any] = {
        "fpd": Measurement(
            *fpd(
                x,
                y,
                seed,
                settings["min_samples"],
                settings["max_samples"],
                settings["num_batches"],
                settings["num_points"],
                extrapolation=extrapolation,
            )
        ),
        "kpd": Measurement(*kpd(x, y, seed, settings["kpd_batches"], settings["kpd_size"])),
    }
    n = min(len(low_base), len(low_other), prdc_rows)
    if low is None or n <= PRDC_K:
        out["prdc"] = None
        return out

    def log_voxels(rows: np.ndarray) -> np.ndarray:
        block = low[rows[:n]]
        v = block[:, 1:] * np.power(np.float32(10.0), block[:, :1])
        return np.log10(np.where(v == 0, np.float32(PRDC_EMPTY_MEV), v)).astype(np.float32)

    res = prdc(log_voxels(low_base), log_voxels(low_other), k=PRDC_K)
    out["prdc"] = {k: Measurement(*v) for k, v in res.items()} | {"n_per_sample": n}
    return out


def verdict_input_names(geometry: Geometry) -> list[str]:
    """Column names of :func:`~showerforge.evaluation.showers.classifier.verdict_inputs`."""
    names = ["log10 E_inc"]
    layers = {name: defined_layers(geometry, name) for name in PER_LAYER_FEATURES}
    names += [f"log10 layer_energy[{i}]" for i in layers["layer_energy"]]
    for name in ("center_x", "center_y", "width_x", "width_y"):
        names += [f"{name}[{i}]" for i in layers[name]]
    names.append("log10 E_tot")
    names += [f"sparsity[{i}]" for i in layers["sparsity"]]
    for name in ("center_r", "width_r"):
        names += [f"{name}[{i}]" for i in layers[name]]
    names.append("E_tot/E_inc")
    names += [f"E_layer[{i}]/E_tot" for i in layers["layer_energy"]]
    return names


def _binomial(flags: np.ndarray) -> Measurement:
    if flags.size == 0:
        return Measurement(None, None)
    p = float(flags.mean())
    return Measurement(p, math.sqrt(p * (1.0 - p) / flags.size))


def classifier_weights(
    result: ClassifierResult, inputs: np.ndarray, names: Sequence[str], incident_mev: np.ndarray
) -> dict[str, Any] | None:
    """Distributions of the classifier weights w = p / (1 - p) (reference / candidate density ratio).

    On the held-out split: histograms of log10 w for reference and candidate showers, the tail
    fractions (candidate showers with w < 0.1: made by the candidate, rare in the reference;
    reference showers with w > 10: missed by the candidate), and where the candidate tail sits
    (median E_inc, and the inputs whose tail mean differs most from the candidate's mean, in
    units of the candidate's standard deviation).

    Args:
        result: a classifier result with per-shower scores.
        inputs: the classifier inputs (rows as in ``result.scores``).
        names: column names of ``inputs``.
        incident_mev: (N,) incident energy of each row of ``inputs``.
    """
    if result.scores is None:
        return None
    rows, labels, logit = result.scores
    log_w = logit / math.log(10.0)
    ref, cand = labels > 0.5, labels < 0.5
    out: dict[str, Any] = {
        "log10_w_edges": WEIGHT_EDGES.tolist(),
        "log10_w_reference": np.histogram(np.clip(log_w[ref], -3, 3), WEIGHT_EDGES)[0].tolist(),
        "log10_w_candidate": np.histogram(np.clip(log_w[cand], -3, 3), WEIGHT_EDGES)[0].tolist(),
        "candidate_tail": _binomial(log_w[cand] < -WEIGHT_TAIL),
        "reference_tail": _binomial(log_w[ref] > WEIGHT_TAIL),
        "n": [int(ref.sum()), int(cand.sum())],
    }
    tail = rows[cand][log_w[cand] < -WEIGHT_TAIL]
    if len(tail) >= 5:
        all_c = inputs[rows[cand]].astype(np.float64)
        sd = all_c.std(axis=0)
        shift = (inputs[tail].astype(np.float64).mean(axis=0) - all_c.mean(axis=0)) / np.where(sd > 0, sd, np.inf)
        top = np.argsort(-np.abs(shift))[:5]
        out["candidate_tail_where"] = {
            "median_incident_gev": float(np.median(incident_mev[tail]) / 1e3),
            "median_incident_gev_all": float(np.median(incident_mev[rows[cand]]) / 1e3),
            "inputs": [{"name": names[i], "shift_in_sd": float(shift[i])} for i in top],
        }
    return out


def evaluate_files(
    reference: str | Path,
    candidate: str | Path,
    out_dir: str | Path,
    *,
    floor_reference: str | Path | None = None,
    geometry: Geometry | str | None = None,
    quick: bool = False,
    seed: int = 0,
    max_showers: int | None = None,
    chunk: int | None = None,
    threshold_mev: float | None = None,
    n_bootstrap: int | None = None,
    classifiers: Sequence[str] = _CLASSIFIERS,
    classifier_config: ClassifierConfig | None = None,
    distances: bool = True,
    nplm_toys: int | None = None,
    fpd_extrapolation: str = "jetnet",
    low_level_memory_mb: float = 1024.0,
    plots: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate a candidate shower file against a reference file (see module docstring).

    Args:
        reference: CaloChallenge-format HDF5 file of reference (e.g. Geant4) showers.
        candidate: file of candidate (generated) showers with the same readout.
        out_dir: output folder (created); ``metrics.json``, ``index.html``, ``plots/``.
        floor_reference: a second reference file, independent of ``reference`` (e.g. Geant4 showers
            with another seed): the floor is then this file against the whole reference, and the
            candidate is compared with the whole reference. Default: the reference is split in two
            seeded halves A and B; the candidate is compared with A and the floor is B against A.
        geometry: readout for files without a ``geometry`` attribute (preset name, JSON or
            CaloChallenge XML file, or a :class:`Geometry`); default: from the files.
        quick: small classifier (:meth:`ClassifierConfig.quick`), 10 bootstrap replicas, small
            FPD / KPD subsamples and PRDC on at most 1000 showers.
        seed: seeds the bootstrap, the reference halves, the subsamples and the classifiers.
        max_showers: use only the first ``max_showers`` showers of each file.
        chunk: showers per read; default: about 8 million voxels per chunk.
        threshold_mev: voxel threshold in MeV; default: the challenge's
            (:func:`showerforge.evaluation.showers.features.default_threshold_mev`).
        n_bootstrap: bootstrap replicas (default 20, quick 10).
        classifiers: which classifier tests to run (``"high_level"``, ``"low_level"``).
        classifier_config: classifier hyper-parameters (overrides ``quick`` for the classifier).
        distances: compute FPD, KPD and PRDC.
        nplm_toys: toys of the NPLM test on the verdict inputs (0: no NPLM test; default 50, quick
            20; see :mod:`showerforge.evaluation.nplm`).
        fpd_extrapolation: ``"jetnet"`` (the challenge's, through jetnet) or ``"lsq"`` (exact line),
            see :func:`showerforge.evaluation.distances.fpd`.
        low_level_memory_mb: memory for the voxel rows of the low-level classifier and PRDC.
        plots: write PNG plots (needs matplotlib).
        progress: called as ``progress(stage, done, total)`` while files are read.

    Returns:
        the content of ``metrics.json`` as a dict.

    Raises:
        CaloFileError: a file is unreadable, or the readouts differ (naming both files and
            both geometries).
        UserError: invalid options.
    """
    unknown = set(classifiers) - set(_CLASSIFIERS)
    if unknown:
        raise UserError(f"unknown classifiers {sorted(unknown)}; expected some of {list(_CLASSIFIERS)}")
    out = check_writable_dir(out_dir)
    files = [reference, candidate] + ([floor_reference] if floor_reference is not None else [])
    for path in files:
        require_clean(path, geometry, role="a file to evaluate")
    if floor_reference is not None and Path(floor_reference).resolve() == Path(reference).resolve():
        raise UserError(
            f"--floor-reference {floor_reference}: is the reference file itself; give an independent "
            "sample (another seed), or omit it to split the reference in halves"
        )
    from showerforge.evaluation.distances import FPD_EXTRAPOLATIONS

    if fpd_extrapolation not in FPD_EXTRAPOLATIONS:
        raise UserError(f"unknown FPD extrapolation {fpd_extrapolation!r}; expected one of {FPD_EXTRAPOLATIONS}")
    n_boot = int(n_bootstrap if n_bootstrap is not None else (10 if quick else 20))
    cfg = classifier_config or (ClassifierConfig.quick() if quick else ClassifierConfig())
    with contextlib.ExitStack() as stack:
        fr, fc = (stack.enter_context(CaloFile.open(p, geometry)) for p in (reference, candidate))
        ff = stack.enter_context(CaloFile.open(floor_reference, geometry)) if floor_reference is not None else None
        geo = fr.geometry
        for other, other_path in ((fc, candidate), (ff, floor_reference)):
            if other is not None and other_path is not None and not geo.same_readout(other.geometry):
                raise CaloFileError(
                    other_path,
                    "geometry",
                    f"readout {other.geometry.name!r} ({other.geometry.n_layers} layers, {other.geometry.n_voxels} "
                    f"voxels, from {other.geometry_source}) differs from the readout {geo.name!r} ({geo.n_layers} "
                    f"layers, {geo.n_voxels} voxels, from {fr.geometry_source}) of the reference {reference}; "
                    "the files must describe the same voxels",
                )
        dataset = challenge_dataset(geo)
        thr = default_threshold_mev(geo) if threshold_mev is None else float(threshold_mev)
        step = int(chunk) if chunk else auto_chunk(geo.n_voxels)

        def used(f: CaloFile) -> int:
            return len(f) if max_showers is None else min(len(f), int(max_showers))

        n_ref, n_cand = used(fr), used(fc)
        n_floor = used(ff) if ff is not None else 0
        need = 2 if ff is not None else 4
        for checked, n, least in ((reference, n_ref, need), (candidate, n_cand, 2), (floor_reference, n_floor, 2)):
            if checked is not None and n < least:
                raise CaloFileError(checked, "showers", f"needs at least {least} showers to evaluate, has {n}")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE7A1]))
        # the samples: base (reference side of both comparisons), candidate rows, floor rows
        if ff is None:
            perm = rng.permutation(n_ref)
            base, floor_rows = np.sort(perm[: n_ref // 2]), np.sort(perm[n_ref // 2 :])
        else:
            base, floor_rows = np.arange(n_ref), np.arange(n_floor)
        m = min(n_cand, len(floor_rows))
        cand_rows, floor_rows = _subsample(np.arange(n_cand), m, rng), _subsample(floor_rows, m, rng)
        # voxel rows for the low-level classifier and PRDC: k per sample, one float32 buffer
        want_low = "low_level" in classifiers or distances
        cap = int(low_level_memory_mb * 2**20 / (3 * 4 * (geo.n_voxels + 1)))
        k = max(0, min(cap, len(base), m)) if want_low else 0
        low_base, low_cand, low_floor = (_subsample(r, k, rng) for r in (base, cand_rows, floor_rows))
        low = np.empty((3 * k, geo.n_voxels + 1), dtype=np.float32) if k else None
        slots = np.arange(3 * k).reshape(3, k)
        ref_rows, ref_slots = low_base, slots[0]
        if ff is None:  # the floor rows are reference rows too
            ref_rows, ref_slots = np.concatenate([low_base, low_floor]), np.concatenate([slots[0], slots[2]])
        # pass 1: reference features, mean shower, low-level rows, smallest positive voxel
        ref_acc = _Pass(geo.n_voxels, thr, ref_rows, ref_slots, low, None, progress, "reference", n_ref)
        ref_f = stream_features(fr, threshold_mev=thr, chunk=step, max_showers=n_ref, on_chunk=ref_acc)
        vmax = float(np.max(ref_f["max_voxel"]))
        vedges = feature_edges(
            "voxel_energy",
            geo,
            dataset,
            threshold_mev=thr,
            reference_max=vmax,
            reference_min_positive=ref_acc.min_positive,
        )
        # pass 2: reference voxel histograms (their edges need the reference maximum)
        ref_counts = _voxel_pass(fr, n_ref, step, thr, vedges, progress) if vedges is not None else None
        # pass 3: candidate (and pass 4: the floor file)
        cand_acc = _Pass(geo.n_voxels, thr, low_cand, slots[1], low, vedges, progress, "candidate", n_cand)
        cand_f = stream_features(fc, threshold_mev=thr, chunk=step, max_showers=n_cand, on_chunk=cand_acc)
        cand_counts = np.concatenate(cand_acc.counts) if vedges is not None else None
        floor_f, floor_counts = ref_f, ref_counts
        if ff is not None:
            floor_acc = _Pass(geo.n_voxels, thr, low_floor, slots[2], low, vedges, progress, "floor reference", n_floor)
            floor_f = stream_features(ff, threshold_mev=thr, chunk=step, max_showers=n_floor, on_chunk=floor_acc)
            floor_counts = np.concatenate(floor_acc.counts) if vedges is not None else None
        file_info = {
            role: {
                "path": str(path),
                "n_showers": n,
                "n_showers_in_file": len(f),
                "geometry_source": f.geometry_source,
            }
            for role, path, n, f in (
                ("reference", reference, n_ref, fr),
                ("candidate", candidate, n_cand, fc),
                ("floor_reference", floor_reference, n_floor, ff),
            )
            if f is not None
        }
    edges = _edges_for(geo, dataset, ref_f, thr)
    edges["voxel_energy"] = vedges

    def pair(other: np.ndarray | None, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        return None if ref_counts is None or other is None else (ref_counts[base], other[rows])

    base_f = _take(ref_f, base)
    comp = compare_features(
        base_f,
        _take(cand_f, cand_rows),
        geo,
        edges,
        n_bootstrap=n_boot,
        seed=seed,
        voxel_counts=pair(cand_counts, cand_rows),
    )
    floor = compare_features(
        base_f,
        _take(floor_f, floor_rows),
        geo,
        edges,
        n_bootstrap=n_boot,
        seed=seed + 1,
        voxel_counts=pair(floor_counts, floor_rows),
    )
    nb = len(base)
    high = np.concatenate(
        [
            high_level_inputs(base_f, geo),
            high_level_inputs(_take(cand_f, cand_rows), geo),
            high_level_inputs(_take(floor_f, floor_rows), geo),
        ]
    )
    ref_idx, cand_idx, floor_idx = np.arange(nb), nb + np.arange(m), nb + m + np.arange(m)
    # classifiers
    comp["classifier"], floor["classifier"] = {}, {}
    if "high_level" in classifiers:
        comp["classifier"]["high_level"] = _run_classifier(high, ref_idx, cand_idx, cfg, seed)
        floor["classifier"]["high_level"] = _run_classifier(high, ref_idx, floor_idx, cfg, seed + 1)
    if "verdict" in classifiers:
        vx = np.concatenate(
            [
                verdict_inputs(base_f, geo),
                verdict_inputs(_take(cand_f, cand_rows), geo),
                verdict_inputs(_take(floor_f, floor_rows), geo),
            ]
        )
        inc_all = np.concatenate(
            [base_f["incident_energy"], cand_f["incident_energy"][cand_rows], floor_f["incident_energy"][floor_rows]]
        )
        names = verdict_input_names(geo)
        vcfg = ClassifierConfig.verdict()
        for block, rows, offset in ((comp, cand_idx, seed), (floor, floor_idx, seed + 1)):
            n_min = min(len(ref_idx), len(rows))
            if n_min < 10:
                block["classifier"]["verdict"] = _run_classifier(vx, ref_idx, rows, vcfg, offset)
                continue
            res = classifier_test_indexed(vx, ref_idx, rows, config=vcfg, seed=offset)
            block["classifier"]["verdict"] = {**res.to_dict(), "skipped": None}
            block["classifier_weights"] = classifier_weights(res, vx, names, inc_all)
        del vx
    ncfg = NPLMConfig.quick() if quick else NPLMConfig()
    if nplm_toys is not None:
        ncfg = replace(ncfg, n_toys=int(nplm_toys))
    if ncfg.n_toys > 0 and min(nb, m) >= 10:
        from showerforge.evaluation.nplm import nplm_test

        verdict_x = np.concatenate(
            [
                verdict_inputs(base_f, geo),
                verdict_inputs(_take(cand_f, cand_rows), geo),
                verdict_inputs(_take(floor_f, floor_rows), geo),
            ]
        )
        res_n = nplm_test(verdict_x[ref_idx], verdict_x[cand_idx], verdict_x[floor_idx], config=ncfg, seed=seed)
        comp["nplm"] = res_n.to_dict()
        floor["nplm"] = {"t": res_n.to_dict()["null_median"], "note": "median of the reference-vs-reference toys"}
        del verdict_x
    if low is not None and "low_level" in classifiers:
        comp["classifier"]["low_level"] = _run_classifier(low, slots[0], slots[1], cfg, seed)
        floor["classifier"]["low_level"] = _run_classifier(low, slots[0], slots[2], cfg, seed + 1)
    dist_settings = _distance_settings(quick, min(nb, m))
    prdc_rows = 1000 if quick else 10_000
    if distances:
        comp["distances"] = _distances(
            high, ref_idx, cand_idx, low, slots[0], slots[1], dist_settings, prdc_rows, seed, fpd_extrapolation
        )
        floor["distances"] = _distances(
            high, ref_idx, floor_idx, low, slots[0], slots[2], dist_settings, prdc_rows, seed + 1, fpd_extrapolation
        )
    del high, low
    from showerforge import __version__

    metrics: dict[str, Any] = {
        "schema": SCHEMA,
        "showerforge_version": __version__,
        **file_info,
        "geometry": {
            "name": geo.name,
            "n_layers": geo.n_layers,
            "n_voxels": geo.n_voxels,
            "is_regular": geo.is_regular,
            "challenge_dataset": dataset,
        },
        "settings": {
            "seed": int(seed),
            "quick": bool(quick),
            "threshold_mev": thr,
            "n_bootstrap": n_boot,
            "chunk": step,
            "max_showers": max_showers,
            "floor": "floor reference file vs the whole reference"
            if ff is not None
            else "reference half B vs reference half A (the candidate is compared with half A)",
            "classifiers": list(classifiers),
            "classifier_config": cfg.to_dict() if classifiers else None,
            "verdict_config": ClassifierConfig.verdict().to_dict() if "verdict" in classifiers else None,
            "nplm": ncfg.to_dict() if ncfg.n_toys > 0 else None,
            "low_level_showers_per_class": k,
            "low_level_memory_mb": float(low_level_memory_mb),
            "distances": {
                **dist_settings,
                "fpd_extrapolation": fpd_extrapolation,
                "features": "CaloChallenge high-level classifier inputs (FPD, KPD); log10 voxel energies, "
                f"empty voxels at {PRDC_EMPTY_MEV} MeV (PRDC)",
                "prdc_k": PRDC_K,
                "prdc_max_showers": prdc_rows,
            }
            if distances
            else None,
        },
        "candidate_vs_reference": comp,
        "reference_vs_reference": floor,
    }
    metrics = _to_json(metrics)
    out.mkdir(parents=True, exist_ok=True)
    plot_files: list[dict[str, str]] = []
    if plots:
        totals = (
            (ref_counts.sum(axis=0), cand_counts.sum(axis=0))
            if ref_counts is not None and cand_counts is not None
            else None
        )
        plot_files = _draw(out, geo, edges, ref_f, cand_f, metrics, ref_acc.sum / n_ref, cand_acc.sum / n_cand, totals)
    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1, sort_keys=False) + "\n")
    from showerforge.evaluation.html import render_html

    with atomic_output(out / "index.html") as tmp:
        tmp.write_text(render_html(metrics, plot_files, format_rows(metrics), verdict_rows(metrics)))
    return metrics


def _run_classifier(
    x: np.ndarray, ref_rows: np.ndarray, cand_rows: np.ndarray, cfg: ClassifierConfig, seed: int
) -> dict[str, Any]:
    n = min(len(ref_rows), len(cand_rows))
    if n < 10:
        return {
            "auc": Measurement(None),
            "jsd": Measurement(None),
            "n_per_class": n,
            "runs": [],
            "skipped": f"needs at least 10 showers per class, has {n}",
        }
    res = classifier_test_indexed(x, ref_rows, cand_rows, config=cfg, seed=seed)
    return {**res.to_dict(), "skipped": None}


# ----------------------------------------------------------------------------- plots
def _draw(
    out: Path,
    geo: Geometry,
    edges: dict[str, Any],
    ref: dict[str, np.ndarray],
    cand: dict[str, np.ndarray],
    metrics: dict[str, Any],
    mean_ref: np.ndarray,
    mean_cand: np.ndarray,
    voxel_totals: tuple[np.ndarray, np.ndarray] | None,
) -> list[dict[str, str]]:
    from showerforge.evaluation.plots import HistPanel, plot_histograms, plot_mean_images, plot_response_vs_energy

    sep = metrics["candidate_vs_reference"]["separation_power"]
    files: list[dict[str, str]] = []

    def note(m: dict[str, Any] | None) -> str:
        return "" if not m or m["value"] is None else f"S = {m['value']:.3g}"

    def add(path: Path, caption: str) -> None:
        files.append({"file": path.relative_to(out).as_posix(), "caption": caption})

    e = edges["etot_over_einc"]
    add(
        plot_histograms(
            out / "plots" / "etot_over_einc.png",
            [
                HistPanel(
                    "E_tot / E_inc",
                    e,
                    unit_histogram(ref["etot_over_einc"], e),
                    unit_histogram(cand["etot_over_einc"], e),
                    note(sep["etot_over_einc"]),
                )
            ],
            xlabel=FEATURE_LABELS["etot_over_einc"],
            logy=True,
        ),
        "Total deposited over incident energy",
    )
    for name in PER_LAYER_FEATURES:
        panels = []
        for layer in defined_layers(geo, name):
            eg = edges[name].get(int(layer))
            if eg is None:
                continue
            panels.append(
                HistPanel(
                    f"layer {layer}",
                    eg,
                    unit_histogram(ref[name][:, layer], eg),
                    unit_histogram(cand[name][:, layer], eg),
                    note(sep[name].get(str(layer))),
                )
            )
        if panels:
            add(
                plot_histograms(
                    out / "plots" / f"{name}.png",
                    panels,
                    xlabel=FEATURE_LABELS[name],
                    logx=name == "layer_energy",
                    logy=name != "sparsity",
                ),
                f"{FEATURE_LABELS[name]} per layer",
            )
    ve = edges.get("voxel_energy")
    if ve is not None and voxel_totals is not None:
        vr, vc = (np.asarray(t, dtype=np.float64) for t in voxel_totals)
        add(
            plot_histograms(
                out / "plots" / "voxel_energy.png",
                [
                    HistPanel(
                        "voxel energy", ve, vr / max(vr.sum(), 1.0), vc / max(vc.sum(), 1.0), note(sep["voxel_energy"])
                    )
                ],
                xlabel=FEATURE_LABELS["voxel_energy"],
                logx=True,
                logy=True,
            ),
            "Voxel energies (all voxels above threshold)",
        )
    weights = metrics["candidate_vs_reference"].get("classifier_weights")
    if weights:
        we = np.asarray(weights["log10_w_edges"])
        wr, wc = (np.asarray(weights[k], dtype=np.float64) for k in ("log10_w_reference", "log10_w_candidate"))
        add(
            plot_histograms(
                out / "plots" / "classifier_weights.png",
                [HistPanel("verdict classifier weights", we, wr / max(wr.sum(), 1.0), wc / max(wc.sum(), 1.0), "")],
                xlabel="log10 w,  w = p / (1 - p) = reference / candidate density ratio",
                logy=True,
            ),
            "Classifier weights on held-out showers: candidate showers at log10 w < -1 are ones the "
            "reference hardly makes; reference showers at log10 w > 1 are ones the candidate misses",
        )
    add(
        plot_response_vs_energy(
            out / "plots" / "response_vs_einc.png",
            ref["incident_energy"],
            ref["etot_over_einc"],
            cand["incident_energy"],
            cand["etot_over_einc"],
        ),
        "E_tot / E_inc against E_inc (mean and standard deviation per bin)",
    )
    if geo.is_regular:
        add(
            plot_mean_images(out / "plots" / "mean_images.png", geo, mean_ref, mean_cand),
            "Mean shower per layer (reference, candidate, ratio)",
        )
        for name, panel, label, title in _profiles(geo, mean_ref, mean_cand):
            add(
                plot_histograms(
                    out / "plots" / f"{name}.png", [panel], xlabel=label, logy=True, ylabel="mean energy [MeV]"
                ),
                title,
            )
    return files


def _profiles(geo: Geometry, mean_ref: np.ndarray, mean_cand: np.ndarray) -> list[tuple[str, Any, str, str]]:
    """Longitudinal (per layer) and radial (per ring, summed over layers and angles) mean energy."""
    from showerforge.evaluation.plots import HistPanel

    n_l, n_a, n_r = geo.shape
    ref, cand = (np.asarray(m, dtype=np.float64).reshape(n_l, n_a, n_r) for m in (mean_ref, mean_cand))
    r_edges = np.asarray(geo.readout[0].r_edges_mm, dtype=np.float64)
    return [
        (
            "layer_profile",
            HistPanel("longitudinal profile", np.arange(n_l + 1.0), ref.sum(axis=(1, 2)), cand.sum(axis=(1, 2)), ""),
            "layer",
            "Mean energy per layer (longitudinal profile)",
        ),
        (
            "radial_profile",
            HistPanel("radial profile", r_edges, ref.sum(axis=(0, 1)), cand.sum(axis=(0, 1)), ""),
            "r [mm]",
            "Mean energy per radial ring, all layers (radial profile)",
        ),
    ]


# ----------------------------------------------------------------------------- summary
def _num(v: float | None, spec: str) -> str:
    """A number formatted, ``n/a`` for None (e.g. Z of a p-value of 1)."""
    return "n/a" if v is None else format(v, spec)


def _scaled(m: dict[str, Any] | None, factor: float) -> dict[str, Any] | None:
    """A stored measurement times ``factor`` (None stays None)."""
    if not m:
        return m
    return {k: (None if v is None else v * factor) for k, v in m.items()}


def format_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, candidate vs reference, reference vs reference) rows of the summary table."""
    comp, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    rows: list[tuple[str, str, str]] = []
    for kind in _CLASSIFIERS:
        if kind in comp.get("classifier", {}):
            for key in ("auc", "jsd"):
                rows.append(
                    (
                        f"classifier {kind.replace('_', '-')} {key.upper()}",
                        format_measurement(comp["classifier"][kind][key]),
                        format_measurement(floor["classifier"][kind][key]),
                    )
                )
    dist, floor_dist = comp.get("distances"), floor.get("distances")
    if dist:
        for key, label in (("fpd", "FPD x 1e3 (high-level features)"), ("kpd", "KPD x 1e3 (high-level features)")):
            rows.append(
                (label, format_measurement(_scaled(dist[key], 1e3)), format_measurement(_scaled(floor_dist[key], 1e3)))
            )
        if dist.get("prdc"):
            for key in ("precision", "recall", "density", "coverage"):
                rows.append(
                    (
                        f"PRDC {key} (k = {PRDC_K})",
                        format_measurement(dist["prdc"][key]),
                        format_measurement(floor_dist["prdc"][key]),
                    )
                )
    cw, fw = comp.get("classifier_weights"), floor.get("classifier_weights")
    if cw:
        rows.append(
            (
                "verdict weights: candidate showers with w < 0.1",
                format_measurement(cw["candidate_tail"]),
                format_measurement((fw or {}).get("candidate_tail")),
            )
        )
        rows.append(
            (
                "verdict weights: reference showers with w > 10",
                format_measurement(cw["reference_tail"]),
                format_measurement((fw or {}).get("reference_tail")),
            )
        )
    nplm = comp.get("nplm")
    if nplm:
        q = nplm.get("null_quantiles_16_84") or [None, None]
        rows.append(
            (
                f"NPLM t ({nplm['n_toys']} toys)",
                f"{_num(nplm['t'], '.4g')} (p = {_num(nplm['p_value'], '.3g')}, Z = {_num(nplm['z'], '.2f')})",
                f"{_num(nplm['null_median'], '.4g')} [{_num(q[0], '.4g')}, {_num(q[1], '.4g')}]",
            )
        )
    if "chi2_ndf_mean" in comp:
        rows.append(
            (
                "chi2/ndf, mean of all histograms",
                format_measurement(comp["chi2_ndf_mean"]["all"]),
                format_measurement(floor["chi2_ndf_mean"]["all"]),
            )
        )
    for key, m in comp["separation_power_mean"].items():
        label = "S, mean of all histograms" if key == "all" else f"S {key}"
        if key in PER_LAYER_FEATURES:
            label += " (layer mean)"
        rows.append((label, format_measurement(m), format_measurement(floor["separation_power_mean"].get(key))))
    for key, m in comp["wasserstein_mean"].items():
        unit = FEATURE_LABELS[key].split("[")[-1].rstrip("]") if "[" in FEATURE_LABELS[key] else ""
        label = f"W1 {key}" + (f" [{unit}]" if unit else "") + (" (layer mean)" if key in PER_LAYER_FEATURES else "")
        rows.append((label, format_measurement(m), format_measurement(floor["wasserstein_mean"].get(key))))
    return rows


def _judge(cand: dict[str, Any] | None, floor: dict[str, Any] | None) -> tuple[str, str]:
    """(word, css class) from the distance of a candidate value to its floor in combined sigma."""
    if not cand or not floor or cand.get("value") is None or floor.get("value") is None:
        return "n/a", ""
    err = math.hypot(cand.get("error") or 0.0, floor.get("error") or 0.0)
    if err <= 0:
        return ("as the floor", "ok") if cand["value"] == floor["value"] else ("no error to judge", "")
    z = (cand["value"] - floor["value"]) / err
    if z <= 2:
        return f"as the floor ({z:+.1f} sigma)", "ok"
    if z <= 5:
        return f"distinguishable ({z:+.1f} sigma)", "warn"
    return f"clearly different ({z:+.1f} sigma)", "bad"


def verdict_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Headline rows of the report: (metric, candidate, floor, verdict, css class)."""
    comp, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    rows: list[tuple[str, str, str, str, str]] = []

    def add(label: str, c: dict[str, Any] | None, f: dict[str, Any] | None, scale: float = 1.0) -> None:
        c, f = _scaled(c, scale), _scaled(f, scale)
        rows.append((label, format_measurement(c), format_measurement(f), *_judge(c, f)))

    names = {
        "verdict": "verdict classifier AUC",
        "high_level": "CaloChallenge high-level AUC",
        "low_level": "CaloChallenge low-level AUC",
    }
    for kind in ("verdict", "high_level", "low_level"):
        if kind in comp.get("classifier", {}):
            add(names[kind], comp["classifier"][kind]["auc"], floor["classifier"][kind]["auc"])
    if comp.get("distances"):
        add("FPD x 1e3", comp["distances"]["fpd"], floor["distances"]["fpd"], 1e3)
        add("KPD x 1e3", comp["distances"]["kpd"], floor["distances"]["kpd"], 1e3)
    add(
        "separation power, mean of all histograms",
        comp["separation_power_mean"]["all"],
        floor["separation_power_mean"]["all"],
    )
    if "chi2_ndf_mean" in comp:
        add("chi2/ndf, mean of all histograms", comp["chi2_ndf_mean"]["all"], floor["chi2_ndf_mean"]["all"])
    add(
        "E_tot / E_inc separation power",
        comp["separation_power"]["etot_over_einc"],
        floor["separation_power"]["etot_over_einc"],
    )
    nplm = comp.get("nplm")
    if nplm and nplm.get("p_value") is not None:
        p = nplm["p_value"]
        word, cls = (
            ("as the reference", "ok")
            if p >= 0.05
            else (("distinguishable", "warn") if p >= 0.003 else ("clearly different", "bad"))
        )
        rows.append(
            (
                f"NPLM p-value ({nplm['n_toys']} toys)",
                f"{p:.3g} (Z = {_num(nplm['z'], '.2f')})",
                f"t null median {_num(nplm['null_median'], '.4g')}",
                word,
                cls,
            )
        )
    return rows


def format_summary(metrics: dict[str, Any]) -> str:
    """A plain-text table (rendered with rich, no colour codes): candidate beside the floor.

    Args:
        metrics: the dict returned by :func:`evaluate_files` (or read from ``metrics.json``).
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    comp = metrics["candidate_vs_reference"]
    table = Table(
        title=Text(f"{metrics['candidate']['path']} vs {metrics['reference']['path']} ({metrics['geometry']['name']})"),
        caption=f"S: separation power; W1: Wasserstein-1; floor: {metrics['settings'].get('floor', 'two halves of the reference')}",
    )
    table.add_column("metric")
    table.add_column(f"candidate vs reference ({comp['n_showers'][1]} vs {comp['n_showers'][0]})", justify="right")
    fl = metrics["reference_vs_reference"]["n_showers"]
    table.add_column(f"reference floor ({fl[0]} vs {fl[1]})", justify="right")
    for row in format_rows(metrics):
        table.add_row(*(Text(cell) for cell in row))
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None, force_terminal=False, record=False).print(table)
    return buf.getvalue()
