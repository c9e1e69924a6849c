"""The computation of a point-cloud evaluation: files in, a :class:`PointEvaluation` out; writes nothing.

Steps (:func:`compute_evaluation`):

1. :func:`check_inputs`: options; every file a point-cloud file with a geometry, all of one
   geometry; the floor file not the reference itself: all before any file is read whole;
2. the files read (:func:`showerforge.data.points.read_points` refuses NaN, infinite or negative
   values) and measured (:func:`.observables.observe`, cells above the threshold);
3. which showers meet (seeded, the rule of the voxel report): without a floor file the reference is
   split in halves A and B, the candidate (cut to the size of B) meets A and the floor is B
   against A; with one, the candidate meets the whole reference and the floor is that file
   against it, candidate and floor cut to one size;
4. both comparisons, the candidate's with ``seed`` and the floor's with ``seed + 1``: W1 x 100 of
   every observable (:mod:`.compare`), their mean, and the classifier test;
5. the ``metrics.json`` content (keys in :mod:`.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.data.points import PointsFileError, is_points_file, read_points, threshold_per_layer
from showerforge.errors import UserError
from showerforge.evaluation.metrics import Measurement
from showerforge.evaluation.points.compare import compare_observables, mean_measurement
from showerforge.evaluation.points.observables import (
    OBSERVABLES,
    PointObservables,
    classifier_inputs,
    observe,
)
from showerforge.evaluation.points.settings import PointSettings, Progress
from showerforge.geometry import Geometry, GeometryError

__all__ = ["SCHEMA", "PointEvaluation", "check_inputs", "plan_samples", "compute_evaluation"]

SCHEMA = "showerforge.evaluation.points/1"
"""The ``schema`` of ``metrics.json``."""

_ROLES = ("reference", "candidate", "floor_reference")


@dataclass
class PointEvaluation:
    """What an evaluation computed: the metrics and what the plots need.

    Attributes:
        metrics: the content of ``metrics.json`` (plain JSON types, no ``plots`` yet).
        geometry: the detector.
        reference: observables of every reference shower used.
        candidate: observables of the candidate showers compared.
    """

    metrics: dict[str, Any]
    geometry: Geometry
    reference: PointObservables
    candidate: PointObservables


# ----------------------------------------------------------------------------- 1: inputs
def _file_geometry(path: str | Path) -> tuple[Geometry, int]:
    """The geometry and shower count of a point-cloud file, from its keys and attributes only."""
    p = Path(path)
    if not p.is_file():
        raise PointsFileError(p, None, "file not found" if not p.exists() else "not a file")
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise PointsFileError(p, None, f"not a readable HDF5 file ({str(err).splitlines()[0]})") from None
    with f:
        keys = set(f.keys())
        if not is_points_file(keys):
            hint = " (a voxel file: CaloChallenge showers/incident_energies)" if "incident_energies" in keys else ""
            missing = next(k for k in ("showers", "num_points", "energies") if k not in keys)
            raise PointsFileError(p, missing, f"missing: not a point-cloud file{hint}")
        text = f.attrs.get("geometry")
        n = int(f["num_points"].shape[0])
    if text is None:
        raise PointsFileError(p, "geometry", "missing: the cells to project the points on are unknown")
    try:
        return Geometry.from_json(text.decode() if isinstance(text, bytes) else str(text)), n
    except GeometryError as err:
        raise PointsFileError(p, "geometry", str(err)) from None


def _differences(a: Geometry, b: Geometry) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    return sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))


def check_inputs(paths: dict[str, str | Path], settings: PointSettings) -> tuple[Geometry, dict[str, int]]:
    """Refuse bad options and files before any long work (and before any output exists).

    Args:
        paths: role (``reference``, ``candidate``, ``floor_reference``) -> file.
        settings: the options.

    Returns:
        The geometry shared by every file, and the showers in each file (role -> count).

    Raises:
        UserError: bad options; the floor file is the reference itself.
        PointsFileError: a file is missing, not a point-cloud file (e.g. a voxel file), has no
            geometry, holds too few showers, or describes another geometry than the reference.
    """
    settings.check()
    floor = paths.get("floor_reference")
    if floor is not None and Path(floor).resolve() == Path(paths["reference"]).resolve():
        raise UserError(
            f"--floor-reference {floor}: is the reference file itself; give an independent "
            "sample (another seed), or omit it to split the reference in halves"
        )
    found = {role: _file_geometry(path) for role, path in paths.items()}
    ref_geo = found["reference"][0]
    if not ref_geo.is_crystal:
        raise PointsFileError(
            paths["reference"], "geometry", f"{ref_geo.name!r} has a cylindrical readout; points are projected on cells"
        )
    for role, (geo, n) in found.items():
        if role != "reference" and geo != ref_geo:
            raise PointsFileError(
                paths[role],
                "geometry",
                f"geometry {geo.name!r} differs from {ref_geo.name!r} of the reference {paths['reference']} "
                f"(fields {', '.join(_differences(geo, ref_geo))}); compare showers of one detector",
            )
        least = 4 if role == "reference" and floor is None else 2
        if min(n, settings.max_samples or n) < least:
            raise PointsFileError(paths[role], "showers", f"needs at least {least} showers to evaluate, has {n}")
    return ref_geo, {role: n for role, (_, n) in found.items()}


# ----------------------------------------------------------------------------- 2, 3: samples
def _measure(paths: dict[str, str | Path], geo: Geometry, settings: PointSettings) -> dict[str, PointObservables]:
    """Read and measure every file (role -> observables), one file in memory at a time.

    Silent (no progress): a bad value in a file (NaN, negative energy) ends the run here with one
    line, before anything is reported or written.
    """
    return {
        role: observe(read_points(path, settings.max_samples), threshold_mip=settings.threshold_mip, geometry=geo)
        for role, path in paths.items()
    }


def _subsample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))


def plan_samples(sizes: dict[str, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference rows of both comparisons, candidate rows, floor rows), seeded; see the module docstring."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9017]))
    n_ref = sizes["reference"]
    if "floor_reference" in sizes:
        base, floor = np.arange(n_ref), np.arange(sizes["floor_reference"])
    else:
        perm = rng.permutation(n_ref)
        base, floor = np.sort(perm[: n_ref // 2]), np.sort(perm[n_ref // 2 :])
    m = min(sizes["candidate"], len(floor))
    return base, _subsample(np.arange(sizes["candidate"]), m, rng), _subsample(floor, m, rng)


# ----------------------------------------------------------------------------- 4: comparisons
def _classifier(
    base: PointObservables, other: PointObservables, settings: PointSettings, seed: int, progress: Progress | None
) -> dict[str, Any]:
    """The classifier test of ``other`` against ``base`` as a report block (or why it was skipped)."""
    n = min(len(base), len(other))
    if not settings.classifier or n < 10:
        why = "not requested" if not settings.classifier else f"needs at least 10 showers per class, has {n}"
        return {"auc": Measurement(None), "jsd": Measurement(None), "n_per_class": n, "runs": [], "skipped": why}
    from showerforge.evaluation.showers.classifier import classifier_test_indexed

    x = np.concatenate([classifier_inputs(base), classifier_inputs(other)])
    rows = np.arange(len(x))
    tick = None if progress is None else (lambda done, total: progress("classifier", done, total))
    res = classifier_test_indexed(
        x, rows[: len(base)], rows[len(base) :], config=settings.classifier_settings, seed=seed, progress=tick
    )
    return {**res.to_dict(), "skipped": None}


def _block(
    base: PointObservables,
    other: PointObservables,
    settings: PointSettings,
    seed: int,
    name: str,
    progress: Progress | None,
) -> dict[str, Any]:
    """One comparison (candidate or floor against the reference side) as a report block."""
    tick = None if progress is None else (lambda done, total: progress(f"bootstrap, {name}", done, total))
    w1 = compare_observables(base, other, n_bootstrap=settings.bootstrap_replicas, seed=seed, progress=tick)
    return {
        "n_showers": [len(base), len(other)],
        "w1x100": w1,
        "w1x100_mean": mean_measurement([w1[k] for k in OBSERVABLES]),
        "classifier": _classifier(base, other, settings, seed, progress),
    }


# ----------------------------------------------------------------------------- 5: metrics
def _to_json(obj: Any) -> Any:
    """Plain JSON types: measurements as dicts, numpy numbers as Python ones, NaN/inf as None."""
    if isinstance(obj, Measurement):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


def _settings_block(settings: PointSettings, geo: Geometry, has_floor_file: bool) -> dict[str, Any]:
    return {
        "seed": int(settings.seed),
        "quick": bool(settings.quick),
        "max_samples": settings.max_samples,
        "threshold_mip": float(settings.threshold_mip),
        "threshold_mev": [float(t) for t in threshold_per_layer(geo, settings.threshold_mip)],
        "n_bootstrap": settings.bootstrap_replicas,
        "floor": "floor reference file vs the whole reference"
        if has_floor_file
        else "reference half B vs reference half A (the candidate is compared with half A)",
        "w1x100": "100 x W1 after standardising both samples with the reference's mean and std (CaloClouds II); "
        "profiles (energy and hits per layer, energy per ring) compared bin by bin on the per-shower values and "
        "averaged over the bins; cell energies: log10(E / MeV) pooled over cells",
        "classifier_config": settings.classifier_settings.to_dict() if settings.classifier else None,
    }


def _geometry_block(geo: Geometry) -> dict[str, Any]:
    return {
        "name": geo.name,
        "n_layers": geo.n_layers,
        "n_cells": geo.n_voxels,
        "cell_mm": sorted({float(lay.crystal_mm) for lay in geo.readout}),
        "stack": geo.describe_stack(),
    }


def compute_evaluation(
    paths: dict[str, str | Path],
    checked: tuple[Geometry, dict[str, int]],
    settings: PointSettings,
    progress: Progress | None = None,
) -> PointEvaluation:
    """Every number of the report (steps 2-5 of the module docstring); writes nothing.

    Args:
        paths: role -> file.
        checked: what :func:`check_inputs` returned (call it first): geometry, showers per file.
        settings: the options.
        progress: called as ``progress(step, done, total)``.
    """
    geo, in_file = checked
    obs = _measure(paths, geo, settings)
    sizes = {role: len(o) for role, o in obs.items()}
    base_rows, cand_rows, floor_rows = plan_samples(sizes, settings.seed)
    base = obs["reference"].select(base_rows)
    cand = obs["candidate"].select(cand_rows)
    floor = obs.get("floor_reference", obs["reference"]).select(floor_rows)
    comp = _block(base, cand, settings, settings.seed, "candidate", progress)
    ref_ref = _block(base, floor, settings, settings.seed + 1, "floor", progress)
    from showerforge._version import __version__

    info = {
        role: {"path": str(paths[role]), "n_showers": n, "n_showers_in_file": in_file[role]}
        for role, n in sizes.items()
    }
    metrics = {
        "schema": SCHEMA,
        "showerforge_version": __version__,
        **info,
        "geometry": _geometry_block(geo),
        "settings": _settings_block(settings, geo, "floor_reference" in paths),
        "candidate_vs_reference": comp,
        "reference_vs_reference": ref_ref,
    }
    return PointEvaluation(_to_json(metrics), geo, obs["reference"], cand)
