"""The computation of a shower evaluation: files in, a :class:`ShowerEvaluation` out; writes nothing.

Steps (:func:`compute_evaluation`), each a function below:

1. :func:`check_inputs`: options, every file clean (finite, non-negative), the floor file not the
   reference itself: all before any long work;
2. :func:`open_inputs`: the files opened, their readouts compared, enough showers in each;
3. :func:`plan_samples`: which rows meet (seeded): reference half A (or the whole reference),
   the candidate rows, the floor rows, and the voxel rows kept for the low-level classifier and
   PRDC (one float32 buffer of ``3 k`` rows);
4. :func:`stream_inputs`: one pass over each file in chunks: features, mean shower, voxel rows,
   voxel-energy histograms (and a second pass over the reference for those, whose edges need the
   reference's largest voxel);
5. the comparisons (:mod:`.comparisons`), candidate against the reference and the floor against
   it, with the same sizes and seeds ``seed`` and ``seed + 1``: histograms, classifiers, NPLM,
   distances;
6. the ``metrics.json`` content (keys in :mod:`showerforge.evaluation.showers.report`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.calo import CaloFile, CaloFileError, require_clean
from showerforge.errors import UserError
from showerforge.evaluation.metrics import Measurement
from showerforge.evaluation.showers.binning import feature_edges
from showerforge.evaluation.showers.classifier import (
    ClassifierConfig,
    classifier_test_indexed,
    high_level_inputs,
    low_level_inputs,
    verdict_inputs,
)
from showerforge.evaluation.showers.comparisons import (
    PRDC_EMPTY_MEV,
    PRDC_K,
    classifier_weights,
    compare_features,
    distance_settings,
    feature_distances,
    histogram_edges,
    run_classifier,
    take_rows,
    verdict_input_names,
)
from showerforge.evaluation.showers.features import (
    auto_chunk,
    challenge_dataset,
    default_threshold_mev,
    stream_features,
    voxel_histograms,
)
from showerforge.evaluation.showers.settings import EvaluationSettings, Progress
from showerforge.geometry import Geometry

__all__ = [
    "SCHEMA",
    "ShowerEvaluation",
    "check_inputs",
    "open_inputs",
    "plan_samples",
    "stream_inputs",
    "compute_evaluation",
]

SCHEMA = "showerforge.evaluation/1"
"""The ``schema`` of ``metrics.json``."""

_ROLES = ("reference", "candidate", "floor_reference")


@dataclass
class ShowerEvaluation:
    """What an evaluation computed: the metrics and what the plots need.

    Attributes:
        metrics: the content of ``metrics.json`` (plain JSON types).
        geometry: the readout.
        edges: bin edges of every histogram (see :func:`~.comparisons.histogram_edges`, plus
            ``voxel_energy``).
        reference: features of every reference shower used.
        candidate: features of every candidate shower used.
        mean_reference: (voxels,) mean reference shower in MeV (thresholded voxels).
        mean_candidate: (voxels,) mean candidate shower in MeV.
        voxel_totals: voxel-energy histograms summed over the reference and over the candidate
            showers, or None (no voxel-energy binning).
    """

    metrics: dict[str, Any]
    geometry: Geometry
    edges: dict[str, Any]
    reference: dict[str, np.ndarray]
    candidate: dict[str, np.ndarray]
    mean_reference: np.ndarray
    mean_candidate: np.ndarray
    voxel_totals: tuple[np.ndarray, np.ndarray] | None


def _step(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    """``progress`` bound to one step name (None stays None)."""
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


# ----------------------------------------------------------------------------- 1, 2: inputs
def check_inputs(reference: str | Path, candidate: str | Path, settings: EvaluationSettings) -> None:
    """Refuse bad options and bad files before any long work (and before any output exists).

    Raises:
        UserError: an unknown classifier or FPD extrapolation; the floor file is the reference.
        CaloFileError: a file is missing, unreadable, or holds NaN, inf or negative energies.
    """
    settings.check()
    floor = settings.floor_reference
    for path in (reference, candidate, floor):
        if path is not None:
            require_clean(path, settings.geometry, role="a file to evaluate")
    if floor is not None and Path(floor).resolve() == Path(reference).resolve():
        raise UserError(
            f"--floor-reference {floor}: is the reference file itself; give an independent "
            "sample (another seed), or omit it to split the reference in halves"
        )


@dataclass
class Inputs:
    """The open files of an evaluation.

    Attributes:
        paths: role (``reference``, ``candidate``, ``floor_reference``) -> path as given.
        files: role -> open file.
        used: role -> showers used (``max_showers`` applied).
    """

    paths: dict[str, str | Path]
    files: dict[str, CaloFile]
    used: dict[str, int]

    @property
    def geometry(self) -> Geometry:
        """The readout (the reference's; the others have the same)."""
        return self.files["reference"].geometry

    @property
    def has_floor_file(self) -> bool:
        """Whether a floor reference file was given."""
        return "floor_reference" in self.files

    def info(self) -> dict[str, dict[str, Any]]:
        """``path``, ``n_showers``, ``n_showers_in_file`` and ``geometry_source`` per role."""
        return {
            role: {
                "path": str(self.paths[role]),
                "n_showers": self.used[role],
                "n_showers_in_file": len(f),
                "geometry_source": f.geometry_source,
            }
            for role, f in self.files.items()
        }


def _check_readouts(paths: dict[str, str | Path], files: dict[str, CaloFile]) -> None:
    """Every file must describe the reference's voxels (naming both files and readouts)."""
    ref = files["reference"]
    geo = ref.geometry
    for role, f in files.items():
        if role != "reference" and not geo.same_readout(f.geometry):
            raise CaloFileError(
                paths[role],
                "geometry",
                f"readout {f.geometry.name!r} ({f.geometry.n_layers} layers, {f.geometry.n_voxels} "
                f"voxels, from {f.geometry_source}) differs from the readout {geo.name!r} ({geo.n_layers} "
                f"layers, {geo.n_voxels} voxels, from {ref.geometry_source}) of the reference {paths['reference']}; "
                "the files must describe the same voxels",
            )


def _check_counts(paths: dict[str, str | Path], used: dict[str, int]) -> None:
    """Enough showers: 4 in a reference that is split in halves, else 2 per file."""
    for role, n in used.items():
        least = 4 if role == "reference" and "floor_reference" not in used else 2
        if n < least:
            raise CaloFileError(paths[role], "showers", f"needs at least {least} showers to evaluate, has {n}")


@contextlib.contextmanager
def open_inputs(reference: str | Path, candidate: str | Path, settings: EvaluationSettings) -> Iterator[Inputs]:
    """Open the files, check that they share one readout and hold enough showers.

    Raises:
        CaloFileError: the readouts differ, or a file holds too few showers.
    """
    given = (reference, candidate, settings.floor_reference)
    paths = {role: path for role, path in zip(_ROLES, given, strict=True) if path is not None}
    with contextlib.ExitStack() as stack:
        files = {role: stack.enter_context(CaloFile.open(path, settings.geometry)) for role, path in paths.items()}
        _check_readouts(paths, files)
        used = {role: settings.showers_used(len(f)) for role, f in files.items()}
        _check_counts(paths, used)
        yield Inputs(paths, files, used)


# ----------------------------------------------------------------------------- 3: samples
def _subsample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``rows`` (all when there are no more), sorted; seeded."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))


@dataclass
class SamplePlan:
    """Which rows meet.

    Attributes:
        base: reference rows of the reference side of both comparisons (half A, or all).
        candidate: candidate rows (as many as the floor rows).
        floor: rows of the floor sample (reference half B, or the floor file).
        low: for the low-level classifier and PRDC, ``k`` rows of each of ``base``,
            ``candidate`` and ``floor``.
        k: voxel rows per sample (0: none kept).
    """

    base: np.ndarray
    candidate: np.ndarray
    floor: np.ndarray
    low: tuple[np.ndarray, np.ndarray, np.ndarray]
    k: int

    @property
    def slots(self) -> np.ndarray:
        """(3, k) rows of the voxel buffer holding ``low[0]``, ``low[1]`` and ``low[2]``."""
        return np.arange(3 * self.k).reshape(3, self.k)


def plan_samples(inputs: Inputs, settings: EvaluationSettings) -> SamplePlan:
    """Seeded choice of the rows that meet (see :class:`SamplePlan`).

    The voxel rows are capped so that three samples fit ``low_level_memory_mb`` in float32.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(settings.seed), 0xE7A1]))
    n_ref = inputs.used["reference"]
    if inputs.has_floor_file:
        base, floor_rows = np.arange(n_ref), np.arange(inputs.used["floor_reference"])
    else:
        perm = rng.permutation(n_ref)
        base, floor_rows = np.sort(perm[: n_ref // 2]), np.sort(perm[n_ref // 2 :])
    n_cand = inputs.used["candidate"]
    m = min(n_cand, len(floor_rows))
    cand_rows, floor_rows = _subsample(np.arange(n_cand), m, rng), _subsample(floor_rows, m, rng)
    want_low = "low_level" in settings.classifiers or settings.distances
    cap = int(settings.low_level_memory_mb * 2**20 / (3 * 4 * (inputs.geometry.n_voxels + 1)))
    k = max(0, min(cap, len(base), m)) if want_low else 0
    low_base, low_cand, low_floor = (_subsample(r, k, rng) for r in (base, cand_rows, floor_rows))
    return SamplePlan(base, cand_rows, floor_rows, (low_base, low_cand, low_floor), k)


# ----------------------------------------------------------------------------- 4: streaming
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
        progress: Callable[[int, int], None] | None,
        total: int,
    ) -> None:
        self.sum = np.zeros(n_voxels)
        self.min_positive = math.inf
        self.threshold = threshold
        order = np.argsort(rows, kind="stable")
        self.rows, self.slots, self.buffer = np.asarray(rows)[order], np.asarray(slots)[order], buffer
        self.edges = voxel_edges
        self.counts: list[np.ndarray] = []
        self.progress, self.total, self.done = progress, total, 0
        if progress is not None:
            progress(0, total)

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
            self.progress(self.done, self.total)

    def voxel_counts(self) -> np.ndarray | None:
        """(n, B) per-shower voxel-energy histograms, or None without voxel edges."""
        return np.concatenate(self.counts) if self.edges is not None else None


def _voxel_pass(
    f: CaloFile, n: int, chunk: int, threshold: float, edges: np.ndarray, progress: Progress | None
) -> np.ndarray:
    """Per-shower voxel-energy histograms (n, B) of the first ``n`` showers of ``f``."""
    counts = []
    if progress is not None:
        progress("reference voxel histogram", 0, n)
    for lo in range(0, n, chunk):
        _, sh = f.read(lo, min(lo + chunk, n))
        counts.append(voxel_histograms(sh, edges, threshold_mev=threshold))
        if progress is not None:
            progress("reference voxel histogram", min(lo + chunk, n), n)
    return np.concatenate(counts) if counts else np.zeros((0, len(edges) - 1), np.int32)


@dataclass
class Streamed:
    """What the passes over the files gave.

    Attributes:
        features: role -> features of every shower used.
        counts: role -> (n, B) voxel-energy histograms per shower, or None.
        means: role -> (voxels,) mean shower in MeV.
        voxel_edges: edges of the voxel-energy histograms, or None.
        low: the voxel rows buffer (see :class:`SamplePlan`), or None.
        threshold: voxel threshold in MeV.
        chunk: showers per read.
    """

    features: dict[str, dict[str, np.ndarray]]
    counts: dict[str, np.ndarray | None]
    means: dict[str, np.ndarray]
    voxel_edges: np.ndarray | None
    low: np.ndarray | None
    threshold: float
    chunk: int


def _stream_reference(
    inputs: Inputs, plan: SamplePlan, low: np.ndarray | None, thr: float, step: int, progress: Progress | None
) -> tuple[dict[str, np.ndarray], _Pass]:
    """Pass 1: reference features, mean shower, voxel rows (with the floor's, from half B)."""
    slots = plan.slots
    rows, where = plan.low[0], slots[0]
    if not inputs.has_floor_file:  # the floor rows are reference rows too
        rows, where = np.concatenate([plan.low[0], plan.low[2]]), np.concatenate([slots[0], slots[2]])
    n = inputs.used["reference"]
    acc = _Pass(inputs.geometry.n_voxels, thr, rows, where, low, None, _step(progress, "reference"), n)
    feats = stream_features(inputs.files["reference"], threshold_mev=thr, chunk=step, max_showers=n, on_chunk=acc)
    return feats, acc


def stream_inputs(
    inputs: Inputs, plan: SamplePlan, settings: EvaluationSettings, progress: Progress | None
) -> Streamed:
    """Read every file once in chunks (the reference twice when voxel histograms are binned)."""
    geo = inputs.geometry
    thr = default_threshold_mev(geo) if settings.threshold_mev is None else float(settings.threshold_mev)
    step = int(settings.chunk) if settings.chunk else auto_chunk(geo.n_voxels)
    low = np.empty((3 * plan.k, geo.n_voxels + 1), dtype=np.float32) if plan.k else None
    ref_f, ref_acc = _stream_reference(inputs, plan, low, thr, step, progress)
    vedges = feature_edges(
        "voxel_energy",
        geo,
        challenge_dataset(geo),
        threshold_mev=thr,
        reference_max=float(np.max(ref_f["max_voxel"])),
        reference_min_positive=ref_acc.min_positive,
    )
    n_ref = inputs.used["reference"]
    ref_counts = (
        _voxel_pass(inputs.files["reference"], n_ref, step, thr, vedges, progress) if vedges is not None else None
    )
    out = Streamed(
        {"reference": ref_f}, {"reference": ref_counts}, {"reference": ref_acc.sum / n_ref}, vedges, low, thr, step
    )
    for role, slot, name in (("candidate", 1, "candidate"), ("floor_reference", 2, "floor reference")):
        if role not in inputs.files:
            continue
        n = inputs.used[role]
        acc = _Pass(geo.n_voxels, thr, plan.low[slot], plan.slots[slot], low, vedges, _step(progress, name), n)
        out.features[role] = stream_features(
            inputs.files[role], threshold_mev=thr, chunk=step, max_showers=n, on_chunk=acc
        )
        out.counts[role], out.means[role] = acc.voxel_counts(), acc.sum / n
    return out


# ----------------------------------------------------------------------------- 5: comparisons
@dataclass
class _Samples:
    """The features of the three samples that meet, and their rows in stacked inputs."""

    base: dict[str, np.ndarray]
    candidate: dict[str, np.ndarray]
    floor: dict[str, np.ndarray]

    @property
    def ref_idx(self) -> np.ndarray:
        """Rows of the reference side (half A, or the whole reference) in :meth:`stack`."""
        return np.arange(len(self.base["etot"]))

    @property
    def cand_idx(self) -> np.ndarray:
        """Rows of the candidate sample in :meth:`stack`."""
        nb = len(self.base["etot"])
        return nb + np.arange(len(self.candidate["etot"]))

    @property
    def floor_idx(self) -> np.ndarray:
        """Rows of the floor sample in :meth:`stack`."""
        nb, m = len(self.base["etot"]), len(self.candidate["etot"])
        return nb + m + np.arange(len(self.floor["etot"]))

    def stack(self, inputs: Callable[[dict[str, np.ndarray], Geometry], np.ndarray], geo: Geometry) -> np.ndarray:
        """``inputs`` of the reference side, the candidate and the floor sample, one after the other."""
        return np.concatenate([inputs(self.base, geo), inputs(self.candidate, geo), inputs(self.floor, geo)])

    def incident(self) -> np.ndarray:
        """Incident energies (MeV) of the rows of :meth:`stack`."""
        return np.concatenate([s["incident_energy"] for s in (self.base, self.candidate, self.floor)])


@dataclass
class _Side:
    """One of the two comparisons: the candidate, or the floor, against the reference side.

    Attributes:
        name: ``"candidate"`` or ``"floor"`` (for progress).
        block: the report block being filled (``candidate_vs_reference`` / ``reference_vs_reference``).
        rows: rows of this sample in the stacked inputs.
        low_rows: rows of this sample in the voxel buffer.
        seed: seed of this comparison.
    """

    name: str
    block: dict[str, Any]
    rows: np.ndarray
    low_rows: np.ndarray
    seed: int


def _samples(plan: SamplePlan, streamed: Streamed) -> _Samples:
    """The features of the rows that meet (the floor rows come from the reference without a floor file)."""
    feats = streamed.features
    return _Samples(
        take_rows(feats["reference"], plan.base),
        take_rows(feats["candidate"], plan.candidate),
        take_rows(feats.get("floor_reference", feats["reference"]), plan.floor),
    )


def _compare_histograms(
    plan: SamplePlan,
    streamed: Streamed,
    samples: _Samples,
    geo: Geometry,
    edges: dict[str, Any],
    settings: EvaluationSettings,
    progress: Progress | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`compare_features` of the candidate and of the floor against the reference side."""
    ref_counts = streamed.counts["reference"]

    def pair(role: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        other = streamed.counts.get(role, ref_counts)
        return None if ref_counts is None or other is None else (ref_counts[plan.base], other[rows])

    blocks = []
    for name, role, rows, sample, offset in (
        ("candidate", "candidate", plan.candidate, samples.candidate, 0),
        ("floor", "floor_reference", plan.floor, samples.floor, 1),
    ):
        blocks.append(
            compare_features(
                samples.base,
                sample,
                geo,
                edges,
                n_bootstrap=settings.bootstrap_replicas,
                seed=settings.seed + offset,
                voxel_counts=pair(role, rows),
                progress=_step(progress, f"bootstrap, {name}"),
            )
        )
    return blocks[0], blocks[1]


def _verdict(
    sides: tuple[_Side, _Side], vx: np.ndarray, samples: _Samples, geo: Geometry, progress: Progress | None
) -> None:
    """The verdict classifier (standardised verdict inputs) and its weights, for both sides."""
    names, vcfg, ref_idx = verdict_input_names(geo), ClassifierConfig.verdict(), samples.ref_idx
    for side in sides:
        tick = _step(progress, f"verdict classifier, {side.name}")
        if min(len(ref_idx), len(side.rows)) < 10:
            side.block["classifier"]["verdict"] = run_classifier(vx, ref_idx, side.rows, vcfg, side.seed)
            continue
        res = classifier_test_indexed(vx, ref_idx, side.rows, config=vcfg, seed=side.seed, progress=tick)
        side.block["classifier"]["verdict"] = {**res.to_dict(), "skipped": None}
        side.block["classifier_weights"] = classifier_weights(res, vx, names, samples.incident())


def _verdict_and_nplm(
    sides: tuple[_Side, _Side],
    samples: _Samples,
    geo: Geometry,
    settings: EvaluationSettings,
    progress: Progress | None,
) -> None:
    """The verdict classifier and the NPLM test, both on the verdict inputs."""
    ncfg = settings.nplm
    want_nplm = ncfg.n_toys > 0 and min(len(samples.ref_idx), len(samples.cand_idx)) >= 10
    if "verdict" not in settings.classifiers and not want_nplm:
        return
    vx = samples.stack(verdict_inputs, geo)
    if "verdict" in settings.classifiers:
        _verdict(sides, vx, samples, geo, progress)
    if want_nplm:
        from showerforge.evaluation.nplm import nplm_test

        x_ref, x_cand, x_floor = vx[samples.ref_idx], vx[samples.cand_idx], vx[samples.floor_idx]
        res = nplm_test(x_ref, x_cand, x_floor, config=ncfg, seed=settings.seed, progress=_step(progress, "NPLM toys"))
        sides[0].block["nplm"] = res.to_dict()
        sides[1].block["nplm"] = {
            "t": res.to_dict()["null_median"],
            "note": "median of the reference-vs-reference toys",
        }


def _classifiers_and_distances(
    sides: tuple[_Side, _Side],
    samples: _Samples,
    low: np.ndarray | None,
    plan: SamplePlan,
    geo: Geometry,
    settings: EvaluationSettings,
    progress: Progress | None,
) -> None:
    """Classifier tests, NPLM and distances of both sides, in the report's order (fixed seeds)."""
    cfg, ref_idx, low_ref = settings.classifier, samples.ref_idx, plan.slots[0]
    high = samples.stack(high_level_inputs, geo)
    for side in sides:
        side.block["classifier"] = {}
    if "high_level" in settings.classifiers:
        for side in sides:
            tick = _step(progress, f"high-level classifier, {side.name}")
            side.block["classifier"]["high_level"] = run_classifier(high, ref_idx, side.rows, cfg, side.seed, tick)
    _verdict_and_nplm(sides, samples, geo, settings, progress)
    if low is not None and "low_level" in settings.classifiers:
        for side in sides:
            tick = _step(progress, f"low-level classifier, {side.name}")
            side.block["classifier"]["low_level"] = run_classifier(low, low_ref, side.low_rows, cfg, side.seed, tick)
    if settings.distances:
        dist = distance_settings(settings.quick, min(len(plan.base), len(plan.candidate)))
        prdc_rows = _prdc_rows(settings)
        for side in sides:
            rows, low_rows = (ref_idx, side.rows), (low_ref, side.low_rows)
            extrapolation = settings.fpd_extrapolation
            side.block["distances"] = feature_distances(
                high, rows, low, low_rows, dist, prdc_rows, side.seed, extrapolation
            )


def _prdc_rows(settings: EvaluationSettings) -> int:
    """Showers per sample for PRDC at most: 1000 quick, 10,000 full."""
    return 1000 if settings.quick else 10_000


# ----------------------------------------------------------------------------- 6: metrics
def _to_json(obj: Any) -> Any:
    """Plain JSON types: measurements as dicts, numpy numbers as Python ones, NaN/inf as None."""
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


def _settings_block(
    settings: EvaluationSettings, has_floor_file: bool, streamed: Streamed, plan: SamplePlan
) -> dict[str, Any]:
    """The ``settings`` of ``metrics.json``: every option as used (defaults resolved)."""
    classifiers = settings.classifiers
    ncfg = settings.nplm
    return {
        "seed": int(settings.seed),
        "quick": bool(settings.quick),
        "threshold_mev": streamed.threshold,
        "n_bootstrap": settings.bootstrap_replicas,
        "chunk": streamed.chunk,
        "max_showers": settings.max_showers,
        "floor": "floor reference file vs the whole reference"
        if has_floor_file
        else "reference half B vs reference half A (the candidate is compared with half A)",
        "classifiers": list(classifiers),
        "classifier_config": settings.classifier.to_dict() if classifiers else None,
        "verdict_config": ClassifierConfig.verdict().to_dict() if "verdict" in classifiers else None,
        "nplm": ncfg.to_dict() if ncfg.n_toys > 0 else None,
        "low_level_showers_per_class": plan.k,
        "low_level_memory_mb": float(settings.low_level_memory_mb),
        "distances": _distances_block(settings, plan) if settings.distances else None,
    }


def _distances_block(settings: EvaluationSettings, plan: SamplePlan) -> dict[str, Any]:
    """``settings.distances`` of ``metrics.json``: FPD/KPD sample sizes, PRDC's k and rows."""
    return {
        **distance_settings(settings.quick, min(len(plan.base), len(plan.candidate))),
        "fpd_extrapolation": settings.fpd_extrapolation,
        "features": "CaloChallenge high-level classifier inputs (FPD, KPD); log10 voxel energies, "
        f"empty voxels at {PRDC_EMPTY_MEV} MeV (PRDC)",
        "prdc_k": PRDC_K,
        "prdc_max_showers": _prdc_rows(settings),
    }


def _geometry_block(geo: Geometry) -> dict[str, Any]:
    """The ``geometry`` of ``metrics.json``."""
    return {
        "name": geo.name,
        "n_layers": geo.n_layers,
        "n_voxels": geo.n_voxels,
        "is_regular": geo.is_regular,
        "challenge_dataset": challenge_dataset(geo),
    }


def compute_evaluation(
    reference: str | Path,
    candidate: str | Path,
    settings: EvaluationSettings,
    progress: Progress | None = None,
) -> ShowerEvaluation:
    """Every number of the report (steps 2-6 of the module docstring); writes nothing.

    Call :func:`check_inputs` first: this function trusts the files to be clean.

    Args:
        reference: reference shower file.
        candidate: candidate shower file with the same readout.
        settings: the options.
        progress: called as ``progress(step, done, total)`` during every long step.

    Raises:
        CaloFileError: the readouts differ, or a file holds too few showers.
    """
    with open_inputs(reference, candidate, settings) as inputs:
        plan = plan_samples(inputs, settings)
        streamed = stream_inputs(inputs, plan, settings, progress)
        info, geo, has_floor_file = inputs.info(), inputs.geometry, inputs.has_floor_file
    ref_f = streamed.features["reference"]
    edges = histogram_edges(geo, challenge_dataset(geo), ref_f, streamed.threshold)
    edges["voxel_energy"] = streamed.voxel_edges
    samples = _samples(plan, streamed)
    comp, floor = _compare_histograms(plan, streamed, samples, geo, edges, settings, progress)
    sides = (
        _Side("candidate", comp, samples.cand_idx, plan.slots[1], settings.seed),
        _Side("floor", floor, samples.floor_idx, plan.slots[2], settings.seed + 1),
    )
    _classifiers_and_distances(sides, samples, streamed.low, plan, geo, settings, progress)
    from showerforge._version import __version__

    metrics = {
        "schema": SCHEMA,
        "showerforge_version": __version__,
        **info,
        "geometry": _geometry_block(geo),
        "settings": _settings_block(settings, has_floor_file, streamed, plan),
        "candidate_vs_reference": comp,
        "reference_vs_reference": floor,
    }
    counts = streamed.counts
    totals = None
    if counts["reference"] is not None and counts["candidate"] is not None:
        totals = (counts["reference"].sum(axis=0), counts["candidate"].sum(axis=0))
    means = streamed.means
    cand_f = streamed.features["candidate"]
    return ShowerEvaluation(
        _to_json(metrics), geo, edges, ref_f, cand_f, means["reference"], means["candidate"], totals
    )
