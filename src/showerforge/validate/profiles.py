"""What validation adds per kind of data: gate-able metrics, their evaluation, notes on the samples.

Every kind validates with analyses (histograms, chi2/ndf, KS p) and the histogram aggregates.
A kind with a :class:`Profile` here also gets evaluation metrics as gate-able numbers (AUCs and
FPD/KPD for showers, the JetNet metrics for jets, the AUC and the mean W1 x 100 for point clouds).
A kind without one validates with analyses only (``[metrics] enabled = false``); a suite that
asks it for metrics is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.kinds import DataKind

__all__ = ["HIST_AGGREGATES", "PROFILES", "Profile", "metric_names", "profile_of", "sample_notes"]

HIST_AGGREGATES = ("chi2_ndf_max", "chi2_ndf_mean", "ks_p_min", "n_bad")
"""Gate-able aggregates of the histogram comparisons (every kind)."""

#: below this many events per sample a run says that its numbers have large errors
SMALL_SAMPLE = 500

Metrics = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Profile:
    """Evaluation metrics of one kind as gate-able numbers.

    Attributes:
        metrics: base metric names (``X``; ``X_floor`` is the reference-vs-reference value).
        ratios: whether ``X_ratio`` (candidate / max(floor, floor error)) exists too.
        options: the suite's ``[metrics]`` table -> keywords of the kind's ``evaluate``.
        extract: ``metrics.json`` content -> ``{name: {"value", "error", "floor", ...}}``.
        classifier_of: metric -> the classifier it needs (``[metrics] classifiers``).
        notes: ``(reference, candidate) -> notes`` for the page, beyond the common ones.
    """

    metrics: tuple[str, ...]
    options: Callable[[Any], dict[str, Any]]
    extract: Callable[[dict[str, Any]], Metrics]
    ratios: bool = False
    classifier_of: dict[str, str] = field(default_factory=dict)
    notes: Callable[[Any, Any], list[str]] = lambda ref, cand: []


def _m(d: Any) -> dict[str, Any]:
    if isinstance(d, dict) and "value" in d:
        return {"value": d.get("value"), "error": d.get("error")}
    return {"value": None, "error": None}


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _with_floor(out: Metrics, name: str, cand: dict[str, Any], floor: dict[str, Any]) -> None:
    if cand["value"] is not None:
        out[name] = {**cand, "floor": floor["value"], "floor_error": floor["error"]}
        out[f"{name}_floor"] = floor


# ----------------------------------------------------------------------------- calo-voxels
_CLASSIFIERS = {"auc_high": "high_level", "auc_low": "low_level", "auc_verdict": "verdict"}


def _shower_options(suite: Any) -> dict[str, Any]:
    opts = suite.metrics
    return {
        "quick": bool(opts.get("quick", True)),
        "max_samples": opts.get("max_samples"),
        "classifiers": tuple(suite.classifiers()),
        "nplm_toys": int(opts.get("nplm_toys", 0)),
        "distances": bool(opts.get("distances", True)),
        "floor_reference": suite.floor_file,
    }


def _shower_metrics(raw: dict[str, Any]) -> Metrics:
    out: Metrics = {}
    for name, clf in _CLASSIFIERS.items():
        path = ("classifier", clf, "auc")
        _with_floor(
            out, name, _m(_dig(raw, "candidate_vs_reference", *path)), _m(_dig(raw, "reference_vs_reference", *path))
        )
    for name in ("fpd", "kpd"):
        where = ("distances", name)
        _with_floor(
            out, name, _m(_dig(raw, "candidate_vs_reference", *where)), _m(_dig(raw, "reference_vs_reference", *where))
        )
    return out


# ----------------------------------------------------------------------------- jet-set
_JET_KEYS = {"w1m": ("W1M",), "w1p": ("W1P", "mean"), "w1efp": ("W1EFP",), "fpd": ("FPD",), "kpd": ("KPD",)}


def _jet_options(suite: Any) -> dict[str, Any]:
    return {"quick": bool(suite.metrics.get("quick", True)), "max_samples": suite.metrics.get("max_samples")}


def _jet_metrics(raw: dict[str, Any]) -> Metrics:
    out: Metrics = {}
    for name, path in _JET_KEYS.items():
        cand = _m(_dig(raw, "candidate_vs_reference", *path))
        if cand["value"] is None:
            continue
        _with_floor(out, name, cand, _m(_dig(raw, "truth_vs_truth", *path)))
        out[f"{name}_ratio"] = {"value": _dig(raw, "target", "ratio", path[0]), "error": None}
    return out


def _jet_notes(ref: Any, cand: Any) -> list[str]:
    from showerforge.data.jetnet import JET_TYPES

    rt, ct = ({JET_TYPES[int(t)] for t in np.unique(x.jet_type)} for x in (ref, cand))
    if rt == ct:
        return []
    return [
        f"jet types differ: reference {','.join(sorted(rt))}, candidate {','.join(sorted(ct))}; "
        "select one type with FILE.h5:TYPE in the suite"
    ]


# ----------------------------------------------------------------------------- calo-points
_POINT_KEYS = {"auc": ("classifier", "auc"), "w1x100_mean": ("w1x100_mean",)}


def _point_options(suite: Any) -> dict[str, Any]:
    opts = suite.metrics
    return {
        "quick": bool(opts.get("quick", True)),
        "max_samples": opts.get("max_samples"),
        "floor_reference": suite.floor_file,
    }


def _point_metrics(raw: dict[str, Any]) -> Metrics:
    out: Metrics = {}
    for name, path in _POINT_KEYS.items():
        cand, floor = _dig(raw, "candidate_vs_reference", *path), _dig(raw, "reference_vs_reference", *path)
        _with_floor(out, name, _m(cand), _m(floor))
    return out


PROFILES: dict[str, Profile] = {
    "calo-voxels": Profile(
        metrics=("auc_high", "auc_low", "auc_verdict", "fpd", "kpd"),
        options=_shower_options,
        extract=_shower_metrics,
        classifier_of=_CLASSIFIERS,
    ),
    "jet-set": Profile(
        metrics=tuple(_JET_KEYS), options=_jet_options, extract=_jet_metrics, ratios=True, notes=_jet_notes
    ),
    "calo-points": Profile(metrics=tuple(_POINT_KEYS), options=_point_options, extract=_point_metrics),
}
"""Validation profiles by kind name (a new kind adds its own here to gate on evaluation metrics)."""


def profile_of(kind: DataKind) -> Profile | None:
    """The kind's profile, or ``None`` (analyses only)."""
    return PROFILES.get(kind.name)


def metric_names(kind: DataKind) -> tuple[str, ...]:
    """Gate-able metric names of a kind: its metrics, ``_floor`` (and ``_ratio``), the aggregates."""
    prof = profile_of(kind)
    if prof is None:
        return HIST_AGGREGATES
    names = [*prof.metrics, *(f"{m}_floor" for m in prof.metrics)]
    if prof.ratios:
        names += [f"{m}_ratio" for m in prof.metrics]
    return (*names, *HIST_AGGREGATES)


def evaluation_metrics(suite: Any, kind: DataKind, ref: str, cand: str, out: Path, seed: int) -> Metrics:
    """Run the kind's evaluation with the suite's settings; the gate-able metrics."""
    prof = profile_of(kind)
    if prof is None:
        raise UserError(
            f"{suite.path}: [metrics] enabled, but validation has no evaluation metrics for {kind.name} data; "
            "set [metrics] enabled = false and gate on histograms"
        )
    raw = kind.evaluate(ref, cand, out, seed=seed, plots=False, **prof.options(suite))
    return prof.extract(raw)


def sample_notes(kind: DataKind, ref: Any, cand: Any, ref_id: dict[str, Any], cand_id: dict[str, Any]) -> list[str]:
    """What a reader of the page should know about the samples (shown on the page, not gated)."""
    notes = []
    if min(len(ref), len(cand)) < SMALL_SAMPLE:
        notes.append(
            f"small samples (reference {len(ref)}, candidate {len(cand)} events): every number has large errors"
        )
    if cand_id.get("sha256") == ref_id.get("sha256"):
        notes.append("the candidate is the reference file itself: every comparison is trivially perfect")
    prof = profile_of(kind)
    return notes + (prof.notes(ref, cand) if prof is not None else [])
