"""The comparisons of two shower samples that the report runs, each on features already computed.

* :func:`compare_features`: separation power, chi2/ndf and W1 of every high-level feature
  histogram (bootstrap errors), with the per-family means;
* :func:`run_classifier` and :func:`classifier_weights`: one classifier two-sample test and the
  distribution of its weights ``w = p / (1 - p)``;
* :func:`feature_distances`: FPD and KPD on the high-level classifier inputs, PRDC on log10 voxel
  energies.

:mod:`showerforge.evaluation.showers.compute` decides which samples meet; nothing here reads files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from showerforge.evaluation.metrics import (
    Measurement,
    Resampler,
    chi2_ndf,
    separation_power,
    separation_power_counts,
    wasserstein1,
)
from showerforge.evaluation.showers.binning import feature_edges
from showerforge.evaluation.showers.classifier import ClassifierConfig, ClassifierResult, classifier_test_indexed
from showerforge.evaluation.showers.features import PER_LAYER_FEATURES, defined_layers
from showerforge.geometry import Geometry

__all__ = [
    "PRDC_K",
    "PRDC_EMPTY_MEV",
    "WEIGHT_EDGES",
    "WEIGHT_TAIL",
    "histogram_edges",
    "compare_features",
    "take_rows",
    "run_classifier",
    "classifier_weights",
    "verdict_input_names",
    "distance_settings",
    "feature_distances",
]

WEIGHT_EDGES = np.linspace(-3.0, 3.0, 31)
"""Bins of log10 w for the classifier-weight histograms."""
WEIGHT_TAIL = 1.0
"""A weight is extreme when |log10 w| > 1 (w > 10 or w < 0.1)."""
PRDC_K = 5
"""Nearest neighbours of PRDC (the CaloChallenge's ``--prdc_k`` default)."""
PRDC_EMPTY_MEV = 0.1
"""Empty voxels enter PRDC's log10 voxel energies as 0.1 MeV, as in the CaloChallenge."""

Tick = Callable[[int, int], None]
"""Called as ``tick(done, total)`` while a comparison runs."""


# ----------------------------------------------------------------------------- histograms
def histogram_edges(
    geometry: Geometry, dataset: str | None, ref: dict[str, np.ndarray], threshold: float
) -> dict[str, Any]:
    """Bin edges of every feature histogram: name -> edges, per-layer name -> {layer: edges}.

    Args:
        geometry: the readout.
        dataset: the CaloChallenge dataset of the readout (or None).
        ref: reference features (the layer-energy ranges come from them).
        threshold: voxel threshold in MeV.
    """
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
    """Mean of the defined measurements; error: quadrature sum / count (None if one lacks an error)."""
    vals = [m for m in ms if m.value is not None]
    if not vals:
        return Measurement(None, None)
    value = float(np.mean([m.value for m in vals]))
    errs = [m.error for m in vals if m.error is not None]
    err = math.sqrt(sum(e * e for e in errs)) / len(vals) if len(errs) == len(vals) else None
    return Measurement(value, err)


def _family_means(block: dict[str, Any], with_all: bool) -> dict[str, Measurement]:
    """Per feature family the mean over layers; ``all``: the mean over every histogram."""
    means = {k: (v if isinstance(v, Measurement) else _mean_of(list(v.values()))) for k, v in block.items()}
    if with_all:
        every = [m for v in block.values() for m in ([v] if isinstance(v, Measurement) else v.values())]
        means["all"] = _mean_of(every)
    return means


def _n_histograms(geometry: Geometry) -> int:
    """Histograms compared by :func:`compare_features`: E_tot/E_inc, voxel energy, per layer."""
    return 2 + sum(len(defined_layers(geometry, name)) for name in PER_LAYER_FEATURES)


def compare_features(
    ref: dict[str, np.ndarray],
    cand: dict[str, np.ndarray],
    geometry: Geometry,
    edges: dict[str, Any],
    *,
    voxel_counts: tuple[np.ndarray, np.ndarray] | None = None,
    n_bootstrap: int = 20,
    seed: int = 0,
    progress: Tick | None = None,
) -> dict[str, Any]:
    """Separation power, chi2/ndf and W1 of every feature between two feature sets.

    Args:
        ref, cand: feature dicts of :func:`showerforge.evaluation.showers.features.compute_features`.
        geometry: the readout.
        edges: bin edges (``etot_over_einc``, ``voxel_energy`` arrays; per-layer dicts).
        voxel_counts: per-shower voxel-energy histograms (n, B), (m, B) on ``edges["voxel_energy"]``.
        n_bootstrap: bootstrap replicas for the errors.
        seed: bootstrap seed.
        progress: called as ``progress(histograms done, histograms)``.

    Returns:
        ``{"n_showers", "separation_power", "wasserstein", "chi2_ndf", "separation_power_mean",
        "wasserstein_mean", "chi2_ndf_mean"}`` with :class:`Measurement` values (see
        :mod:`showerforge.evaluation.showers.report`).
    """
    total = _n_histograms(geometry)
    if progress is not None:
        progress(0, total)
    n_ref, n_cand = len(ref["etot"]), len(cand["etot"])
    rs = Resampler(n_ref, n_cand, n_bootstrap, seed)
    e = edges["etot_over_einc"]
    r, c = ref["etot_over_einc"], cand["etot_over_einc"]
    sep: dict[str, Any] = {"etot_over_einc": separation_power(r, c, e, resampler=rs)}
    chi2: dict[str, Any] = {"etot_over_einc": chi2_ndf(r, c, e, resampler=rs)}
    w1: dict[str, Any] = {"etot_over_einc": wasserstein1(r, c, resampler=rs)}
    sep["voxel_energy"] = Measurement(None, None)
    if voxel_counts is not None:
        sep["voxel_energy"] = separation_power_counts(*voxel_counts, resampler=rs)
    done = 2
    for name in PER_LAYER_FEATURES:
        sep[name], chi2[name], w1[name] = _per_layer(ref, cand, geometry, name, edges[name], rs)
        done += len(sep[name])
        if progress is not None:
            progress(done, total)
    return {
        "n_showers": [n_ref, n_cand],
        "separation_power": sep,
        "wasserstein": w1,
        "chi2_ndf": chi2,
        "separation_power_mean": _family_means(sep, with_all=True),
        "wasserstein_mean": _family_means(w1, with_all=False),
        "chi2_ndf_mean": _family_means(chi2, with_all=True),
    }


def _per_layer(
    ref: dict[str, np.ndarray],
    cand: dict[str, np.ndarray],
    geometry: Geometry,
    name: str,
    edges: dict[int, np.ndarray | None],
    rs: Resampler,
) -> tuple[dict[str, Measurement], dict[str, Measurement], dict[str, Measurement]]:
    """Separation power, chi2/ndf and W1 of one per-layer feature, keyed by the layer index."""
    sep: dict[str, Measurement] = {}
    chi2: dict[str, Measurement] = {}
    w1: dict[str, Measurement] = {}
    for layer in defined_layers(geometry, name):
        e = edges.get(int(layer))
        r, c = ref[name][:, layer], cand[name][:, layer]
        sep[str(layer)] = separation_power(r, c, e, resampler=rs) if e is not None else Measurement(None)
        chi2[str(layer)] = chi2_ndf(r, c, e, resampler=rs) if e is not None else Measurement(None)
        w1[str(layer)] = wasserstein1(r, c, resampler=rs)
    return sep, chi2, w1


def take_rows(features: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """The rows ``idx`` of every feature."""
    return {k: v[idx] for k, v in features.items()}


# ----------------------------------------------------------------------------- classifiers
def run_classifier(
    x: np.ndarray,
    ref_rows: np.ndarray,
    cand_rows: np.ndarray,
    cfg: ClassifierConfig,
    seed: int,
    progress: Tick | None = None,
) -> dict[str, Any]:
    """One classifier test as a report block, or a ``skipped`` block below 10 showers per class.

    Args:
        x: (N, d) inputs of both samples.
        ref_rows, cand_rows: rows of ``x`` of the reference and the candidate sample.
        cfg: classifier hyper-parameters.
        seed: seeds the classifier.
        progress: called as ``progress(epochs done, epochs)``.
    """
    n = min(len(ref_rows), len(cand_rows))
    if n < 10:
        return {
            "auc": Measurement(None),
            "jsd": Measurement(None),
            "n_per_class": n,
            "runs": [],
            "skipped": f"needs at least 10 showers per class, has {n}",
        }
    res = classifier_test_indexed(x, ref_rows, cand_rows, config=cfg, seed=seed, progress=progress)
    return {**res.to_dict(), "skipped": None}


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
    """Fraction of true flags with its binomial error (None for no flags)."""
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
        out["candidate_tail_where"] = _tail_where(tail, rows[cand], inputs, names, incident_mev)
    return out


def _tail_where(
    tail: np.ndarray, cand_rows: np.ndarray, inputs: np.ndarray, names: Sequence[str], incident_mev: np.ndarray
) -> dict[str, Any]:
    """Median E_inc of the candidate tail and the five inputs whose tail mean moved most (in sd)."""
    all_c = inputs[cand_rows].astype(np.float64)
    sd = all_c.std(axis=0)
    shift = (inputs[tail].astype(np.float64).mean(axis=0) - all_c.mean(axis=0)) / np.where(sd > 0, sd, np.inf)
    top = np.argsort(-np.abs(shift))[:5]
    return {
        "median_incident_gev": float(np.median(incident_mev[tail]) / 1e3),
        "median_incident_gev_all": float(np.median(incident_mev[cand_rows]) / 1e3),
        "inputs": [{"name": names[i], "shift_in_sd": float(shift[i])} for i in top],
    }


# ----------------------------------------------------------------------------- distances
def distance_settings(quick: bool, n: int) -> dict[str, int]:
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


def feature_distances(
    high: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    low: np.ndarray | None,
    low_rows: tuple[np.ndarray, np.ndarray],
    settings: dict[str, int],
    prdc_rows: int,
    seed: int,
    extrapolation: str,
) -> dict[str, Any]:
    """FPD and KPD on the high-level inputs, PRDC (k = 5) on log10 voxel energies.

    Args:
        high: (N, d) high-level classifier inputs of every sample.
        rows: rows of ``high`` of the reference side and of the other side.
        low: (M, 1 + voxels) low-level rows ``[log10 E_inc, voxels / E_inc]``, or None.
        low_rows: rows of ``low`` of the reference side and of the other side.
        settings: :func:`distance_settings`.
        prdc_rows: showers per sample for PRDC at most.
        seed: seeds FPD and KPD.
        extrapolation: FPD extrapolation (``"jetnet"`` or ``"lsq"``).

    Returns:
        ``{"fpd", "kpd", "prdc"}``; ``prdc`` is None without voxel rows or with at most k per sample.
    """
    from showerforge.evaluation.distances import fpd, kpd

    x, y = high[rows[0]], high[rows[1]]
    fpd_args = (settings["min_samples"], settings["max_samples"], settings["num_batches"], settings["num_points"])
    return {
        "fpd": Measurement(*fpd(x, y, seed, *fpd_args, extrapolation=extrapolation)),
        "kpd": Measurement(*kpd(x, y, seed, settings["kpd_batches"], settings["kpd_size"])),
        "prdc": _prdc(low, low_rows, prdc_rows),
    }


def _prdc(low: np.ndarray | None, low_rows: tuple[np.ndarray, np.ndarray], prdc_rows: int) -> dict[str, Any] | None:
    """PRDC (k = :data:`PRDC_K`) of the first ``prdc_rows`` voxel rows of each side, or None."""
    from showerforge.evaluation.distances import prdc

    n = min(len(low_rows[0]), len(low_rows[1]), prdc_rows)
    if low is None or n <= PRDC_K:
        return None

    def log_voxels(rows: np.ndarray) -> np.ndarray:
        block = low[rows[:n]]
        v = block[:, 1:] * np.power(np.float32(10.0), block[:, :1])
        return np.log10(np.where(v == 0, np.float32(PRDC_EMPTY_MEV), v)).astype(np.float32)

    res = prdc(log_voxels(low_rows[0]), log_voxels(low_rows[1]), k=PRDC_K)
    return {k: Measurement(*v) for k, v in res.items()} | {"n_per_sample": n}
