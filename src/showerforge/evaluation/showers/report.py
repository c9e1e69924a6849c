"""CaloChallenge-standard evaluation of a candidate shower file against a reference file.

:func:`evaluate_files` reads both files in chunks (memory bounded by a chunk plus the small
per-shower features), computes the high-level features of
:mod:`showerforge.evaluation.showers.features`, and compares candidate with reference, and, as a
floor (what statistics alone give), one half of the reference with the other half (seeded split).
It writes, into ``out_dir``:

* ``metrics.json`` (keys below);
* ``plots/*.png``: reference-vs-candidate histograms with ratio panels (``etot_over_einc``,
  ``voxel_energy``, and one grid per per-layer feature), ``response_vs_einc.png`` and, for
  regular readouts, ``mean_images.png``, ``layer_profile.png`` and ``radial_profile.png`` (mean
  energy per layer and per radial ring);
* ``index.html``: the tables and the plots on one page.

Nothing is printed; :func:`format_summary` turns the returned dict into a table for the CLI.

``metrics.json`` keys (schema ``showerforge.evaluation/1``); every measurement is
``{"value": v, "error": e}`` with ``null`` where undefined (e.g. a histogram without entries inside
the challenge's fixed range, such as every E_tot/E_inc outside [0.5, 1.5]):

* ``schema``, ``showerforge_version``;
* ``reference`` / ``candidate``: ``path``, ``n_showers`` (used), ``n_showers_in_file``,
  ``geometry_source``;
* ``geometry``: ``name``, ``n_layers``, ``n_voxels``, ``is_regular``, ``challenge_dataset``
  (``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"`` or null);
* ``settings``: ``seed``, ``quick``, ``threshold_mev``, ``n_bootstrap``, ``chunk``,
  ``max_showers``, ``classifiers`` (list of ``"high_level"``/``"low_level"``),
  ``classifier_config`` (or null), ``low_level_showers_per_class``, ``low_level_memory_mb``;
* ``candidate_vs_reference`` and ``reference_vs_reference`` (the floor), each with

  - ``n_showers``: ``[n_a, n_b]`` sample sizes compared;
  - ``separation_power``: ``etot_over_einc``, ``voxel_energy`` (measurements) and, per
    per-layer feature (``layer_energy``, ``center_x``, ``center_y``, ``width_x``, ``width_y``,
    ``center_r``, ``width_r``, ``sparsity``), a dict ``{"<layer index>": measurement}`` over
    the layers where the feature is defined;
  - ``wasserstein``: the same keys except ``voxel_energy`` (W1 in the feature's unit: MeV, mm,
    dimensionless);
  - ``separation_power_mean`` / ``wasserstein_mean``: per feature family the mean over layers
    (error: quadrature sum / count), and ``all`` (separation power only: mean over every
    histogram);
  - ``classifier``: ``high_level`` / ``low_level`` → ``{"auc", "jsd"}`` measurements,
    ``n_per_class``, ``runs``, and ``skipped`` (null, or the reason).

Sample sizes: the candidate is compared with the whole reference; the floor compares two halves of
the reference, so it carries the statistical noise of half the reference. The low-level classifier
holds its inputs in memory: each class is limited to
``low_level_memory_mb / (2 * 4 bytes * (n_voxels + 1))`` showers (seeded subsample; 1 GB gives
about 20,000 dataset-2 or 3,300 dataset-3 showers per class). Histograms use the CaloChallenge
binnings (:mod:`showerforge.evaluation.showers.binning`), with edges from the whole reference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.calo import CaloFile, CaloFileError, atomic_output, require_clean
from showerforge.data.io import check_writable_dir
from showerforge.errors import UserError
from showerforge.evaluation.metrics import (
    Measurement,
    Resampler,
    format_measurement,
    separation_power,
    separation_power_counts,
    unit_histogram,
    wasserstein1,
)
from showerforge.evaluation.showers.binning import feature_edges
from showerforge.evaluation.showers.classifier import (
    ClassifierConfig,
    classifier_test_indexed,
    high_level_inputs,
    low_level_inputs,
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
_CLASSIFIERS = ("high_level", "low_level")
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
        ``{"n_showers", "separation_power", "wasserstein", "separation_power_mean",
        "wasserstein_mean"}`` with :class:`Measurement` values (see module docstring).
    """
    n_ref, n_cand = len(ref["etot"]), len(cand["etot"])
    rs = Resampler(n_ref, n_cand, n_bootstrap, seed)
    sep: dict[str, Any] = {}
    w1: dict[str, Any] = {}
    sep["etot_over_einc"] = separation_power(
        ref["etot_over_einc"], cand["etot_over_einc"], edges["etot_over_einc"], resampler=rs
    )
    w1["etot_over_einc"] = wasserstein1(ref["etot_over_einc"], cand["etot_over_einc"], resampler=rs)
    if voxel_counts is not None:
        sep["voxel_energy"] = separation_power_counts(*voxel_counts, resampler=rs)
    else:
        sep["voxel_energy"] = Measurement(None, None)
    for name in PER_LAYER_FEATURES:
        sep[name], w1[name] = {}, {}
        for layer in defined_layers(geometry, name):
            e = edges[name].get(int(layer))
            r, c = ref[name][:, layer], cand[name][:, layer]
            sep[name][str(layer)] = separation_power(r, c, e, resampler=rs) if e is not None else Measurement(None)
            w1[name][str(layer)] = wasserstein1(r, c, resampler=rs)
    sep_mean = {k: (v if isinstance(v, Measurement) else _mean_of(list(v.values()))) for k, v in sep.items()}
    every = [sep["etot_over_einc"], sep["voxel_energy"]] + [m for k in PER_LAYER_FEATURES for m in sep[k].values()]
    sep_mean["all"] = _mean_of(every)
    w1_mean = {k: (v if isinstance(v, Measurement) else _mean_of(list(v.values()))) for k, v in w1.items()}
    return {
        "n_showers": [n_ref, n_cand],
        "separation_power": sep,
        "wasserstein": w1,
        "separation_power_mean": sep_mean,
        "wasserstein_mean": w1_mean,
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
    """Per-chunk accumulators: mean shower, extreme voxels, low-level rows, voxel histograms."""

    def __init__(
        self,
        n_voxels: int,
        threshold: float,
        rows: np.ndarray | None,
        buffer: np.ndarray | None,
        offset: int,
        voxel_edges: np.ndarray | None,
        progress: Progress | None,
        stage: str,
        total: int,
    ) -> None:
        self.sum = np.zeros(n_voxels)
        self.min_positive = math.inf
        self.threshold = threshold
        self.rows, self.buffer, self.filled = rows, buffer, offset
        self.edges = voxel_edges
        self.counts: list[np.ndarray] = []
        self.progress, self.stage, self.total, self.done = progress, stage, total, 0

    def __call__(self, lo: int, inc: np.ndarray, sh: np.ndarray) -> None:
        kept = np.where((sh < self.threshold) | (sh < 0), 0.0, sh)
        self.sum += kept.sum(axis=0, dtype=np.float64)
        pos = kept[kept > 0]
        if pos.size:
            self.min_positive = min(self.min_positive, float(pos.min()))
        if self.rows is not None and self.buffer is not None:
            sel = self.rows[(self.rows >= lo) & (self.rows < lo + len(inc))] - lo
            if sel.size:
                self.buffer[self.filled : self.filled + sel.size] = low_level_inputs(
                    inc[sel], sh[sel], threshold_mev=self.threshold
                )
                self.filled += sel.size
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
def evaluate_files(
    reference: str | Path,
    candidate: str | Path,
    out_dir: str | Path,
    *,
    geometry: Geometry | str | None = None,
    quick: bool = False,
    seed: int = 0,
    max_showers: int | None = None,
    chunk: int | None = None,
    threshold_mev: float | None = None,
    n_bootstrap: int | None = None,
    classifiers: Sequence[str] = _CLASSIFIERS,
    classifier_config: ClassifierConfig | None = None,
    low_level_memory_mb: float = 1024.0,
    plots: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate a candidate shower file against a reference file (see module docstring).

    Args:
        reference: CaloChallenge-format HDF5 file of reference (e.g. Geant4) showers.
        candidate: file of candidate (generated) showers with the same readout.
        out_dir: output folder (created); ``metrics.json``, ``index.html``, ``plots/``.
        geometry: readout for files without a ``geometry`` attribute (preset name, JSON or
            CaloChallenge XML file, or a :class:`Geometry`); default: from the files.
        quick: small classifier (:meth:`ClassifierConfig.quick`) and 10 bootstrap replicas.
        seed: seeds the bootstrap, the reference halves, the subsamples and the classifiers.
        max_showers: use only the first ``max_showers`` showers of each file.
        chunk: showers per read; default: about 8 million voxels per chunk.
        threshold_mev: voxel threshold in MeV; default: the challenge's
            (:func:`showerforge.evaluation.showers.features.default_threshold_mev`).
        n_bootstrap: bootstrap replicas (default 20, quick 10).
        classifiers: which classifier tests to run (``"high_level"``, ``"low_level"``).
        classifier_config: classifier hyper-parameters (overrides ``quick`` for the classifier).
        low_level_memory_mb: memory allowed for the low-level classifier inputs.
        plots: write PNG plots (needs matplotlib).
        progress: called as ``progress(stage, done, total)`` while files are read.

    Returns:
        the content of ``metrics.json`` as a dict.

    Raises:
        CaloFileError: a file is unreadable, or the two readouts differ (naming both files and
            both geometries).
        UserError: invalid options.
    """
    unknown = set(classifiers) - set(_CLASSIFIERS)
    if unknown:
        raise UserError(f"unknown classifiers {sorted(unknown)}; expected some of {list(_CLASSIFIERS)}")
    out = check_writable_dir(out_dir)
    for path in (reference, candidate):
        require_clean(path, geometry, role="a file to evaluate")
    n_boot = int(n_bootstrap if n_bootstrap is not None else (10 if quick else 20))
    cfg = classifier_config or (ClassifierConfig.quick() if quick else ClassifierConfig())
    with CaloFile.open(reference, geometry) as fr, CaloFile.open(candidate, geometry) as fc:
        geo = fr.geometry
        if not geo.same_readout(fc.geometry):
            raise CaloFileError(
                candidate,
                "geometry",
                f"readout {fc.geometry.name!r} ({fc.geometry.n_layers} layers, {fc.geometry.n_voxels} voxels, "
                f"from {fc.geometry_source}) differs from the readout {geo.name!r} ({geo.n_layers} layers, "
                f"{geo.n_voxels} voxels, from {fr.geometry_source}) of the reference {reference}; "
                "both files must describe the same voxels",
            )
        dataset = challenge_dataset(geo)
        thr = default_threshold_mev(geo) if threshold_mev is None else float(threshold_mev)
        step = int(chunk) if chunk else auto_chunk(geo.n_voxels)
        n_ref = len(fr) if max_showers is None else min(len(fr), int(max_showers))
        n_cand = len(fc) if max_showers is None else min(len(fc), int(max_showers))
        if n_ref < 2 or n_cand < 2:
            raise CaloFileError(
                reference if n_ref < 2 else candidate, "showers", "needs at least 2 showers to evaluate"
            )
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE7A1]))
        n_low = 0
        ref_rows = cand_rows = low = None
        if "low_level" in classifiers:
            # one buffer for both samples' low-level inputs: reference rows first, then candidate
            cap = int(low_level_memory_mb * 2**20 / (2 * 4 * (geo.n_voxels + 1)))
            n_low = max(0, min(n_ref, n_cand, cap))
            ref_rows = np.sort(rng.choice(n_ref, n_low, replace=False))
            cand_rows = ref_rows if n_ref == n_cand else np.sort(rng.choice(n_cand, n_low, replace=False))
            low = np.empty((2 * n_low, geo.n_voxels + 1), dtype=np.float32)
        # pass 1: reference features, mean shower, low-level rows, smallest positive voxel
        ref_acc = _Pass(geo.n_voxels, thr, ref_rows, low, 0, None, progress, "reference", n_ref)
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
        # pass 3: candidate
        cand_acc = _Pass(geo.n_voxels, thr, cand_rows, low, n_low, vedges, progress, "candidate", n_cand)
        cand_f = stream_features(fc, threshold_mev=thr, chunk=step, max_showers=n_cand, on_chunk=cand_acc)
        cand_counts = np.concatenate(cand_acc.counts) if vedges is not None else None
        file_info = {
            "reference": {
                "path": str(reference),
                "n_showers": n_ref,
                "n_showers_in_file": len(fr),
                "geometry_source": fr.geometry_source,
            },
            "candidate": {
                "path": str(candidate),
                "n_showers": n_cand,
                "n_showers_in_file": len(fc),
                "geometry_source": fc.geometry_source,
            },
        }
    edges = _edges_for(geo, dataset, ref_f, thr)
    edges["voxel_energy"] = vedges
    # the floor: two seeded halves of the reference
    perm = rng.permutation(n_ref)
    half_a, half_b = np.sort(perm[: n_ref // 2]), np.sort(perm[n_ref // 2 : 2 * (n_ref // 2)])
    comp = compare_features(
        ref_f,
        cand_f,
        geo,
        edges,
        n_bootstrap=n_boot,
        seed=seed,
        voxel_counts=(ref_counts, cand_counts) if ref_counts is not None and cand_counts is not None else None,
    )
    floor = compare_features(
        _take(ref_f, half_a),
        _take(ref_f, half_b),
        geo,
        edges,
        n_bootstrap=n_boot,
        seed=seed + 1,
        voxel_counts=(ref_counts[half_a], ref_counts[half_b]) if ref_counts is not None else None,
    )
    # classifiers
    comp["classifier"], floor["classifier"] = {}, {}
    if "high_level" in classifiers:
        high = np.concatenate([high_level_inputs(ref_f, geo), high_level_inputs(cand_f, geo)])
        comp["classifier"]["high_level"] = _run_classifier(high, np.arange(n_ref), n_ref + np.arange(n_cand), cfg, seed)
        floor["classifier"]["high_level"] = _run_classifier(high, half_a, half_b, cfg, seed + 1)
        del high
    if low is not None:
        comp["classifier"]["low_level"] = _run_classifier(low, np.arange(n_low), n_low + np.arange(n_low), cfg, seed)
        p = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1A1F])).permutation(n_low)
        h = n_low // 2
        floor["classifier"]["low_level"] = _run_classifier(low, np.sort(p[:h]), np.sort(p[h : 2 * h]), cfg, seed + 1)
        del low
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
            "classifiers": list(classifiers),
            "classifier_config": cfg.to_dict() if classifiers else None,
            "low_level_showers_per_class": n_low,
            "low_level_memory_mb": float(low_level_memory_mb),
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
        tmp.write_text(render_html(metrics, plot_files, format_rows(metrics)))
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
        caption="S: separation power; W1: Wasserstein-1; floor: two halves of the reference",
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
