"""Showers of a highly granular calorimeter as point clouds: the kind ``calo-points``.

Files follow :mod:`showerforge.data.points` (``showers`` variable-length points x, y in mm,
layer, energy in MeV; ``num_points``; ``energies`` in MeV; the showerdata layout). Events are
conditioned on the incident energy. Evaluation projects the points onto the geometry's cells
with the readout threshold (:mod:`showerforge.evaluation.points`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from showerforge.errors import UserError
from showerforge.kinds.base import DataKind, GenerationRequest, Status

__all__ = ["CaloPoints"]


class CaloPoints(DataKind):
    """Point-cloud showers (Geant4 hits clustered on sub-cells; CaloClouds-style samples)."""

    name: ClassVar[str] = "calo-points"
    aliases: ClassVar[tuple[str, ...]] = ("points", "point-cloud", "point-clouds")
    noun: ClassVar[str] = "showers"
    description: ClassVar[str] = "a point-cloud file (keys 'showers', 'num_points', 'energies')"
    default_model: ClassVar[str | None] = "cfm-points"
    simulate_keys: ClassVar[frozenset[str]] = frozenset(
        {"geometry", "particle", "energy", "spectrum", "n", "seed", "shard_size", "physics", "cut_mm", "workers"}
    )
    floor_section: ClassVar[str] = "reference_vs_reference"
    default_analyses: ClassVar[tuple[str, ...]] = ("points_energy", "points_shapes", "points_profiles")

    # ------------------------------------------------------------------ files
    def matches(self, keys: Collection[str]) -> bool:
        from showerforge.data.points import is_points_file

        return is_points_file(keys)

    def split_spec(self, spec: str | Path) -> tuple[Path, str | None]:
        return Path(spec), None

    def count(self, spec: str | Path) -> int:
        from showerforge.data.points import points_count

        return points_count(spec)

    def inspect(self, spec: str | Path, *, geometry: Any = None) -> tuple[dict[str, Any], str]:
        from showerforge.inspect import format_points_inspection, inspect_points_file

        if geometry is not None:
            raise UserError(
                f"{spec}: a point-cloud file carries its geometry; --geometry / --binning are for voxel files"
            )
        desc = inspect_points_file(spec)
        return desc, format_points_inspection(desc)

    def read_events(self, spec: str | Path, max_events: int | None = None) -> Any:
        from showerforge.data.points import read_points

        return read_points(spec, max_events)

    # ------------------------------------------------------------------ training and runs
    def train(self, data: str | Path, output: str | Path, *, model: str | None, **settings: Any) -> Any:
        from showerforge.data.points import read_points
        from showerforge.generate.common import calibrate_run
        from showerforge.training.calo_points import train_points

        self.refuse_options(settings, ("condition",), "point-cloud showers are conditioned on the incident energy")
        result = train_points(data, output, model=model or str(self.default_model), **settings)
        if result.epochs_run:  # the occupancy calibration against the training showers (cfm-points)
            progress = bool(settings.get("progress", True))
            calibrate_run(
                result.checkpoint, self.load, read_points(data), seed=int(settings.get("seed") or 0), progress=progress
            )
        return result

    def load(self, checkpoint: Path, device: Any = "cpu") -> Any:
        from showerforge.generate.calo_points import load_points_model

        return load_points_model(checkpoint, device)

    # ------------------------------------------------------------------ generation
    def draws(self, request: GenerationRequest, *, model: str) -> Any:
        """Incident energies in MeV, drawn as for voxel showers; ``energies_from`` may be a point or a voxel file."""
        from showerforge.kinds import get_kind, kind_of_file

        if (
            request.energies_from is not None
            and len(request.given()) == 1
            and kind_of_file(request.energies_from) is self
        ):
            from showerforge.data.points import read_points

            return request.first_n(read_points(request.energies_from).incident_mev)
        return get_kind("calo-voxels").draws(request, model=model)

    def generate(self, model: str | Path, draws: Any, output: str | Path, **options: Any) -> Path:
        from showerforge.generate.calo_points import generate_points

        return generate_points(model, np.asarray(draws, dtype=np.float64), output, **options)

    def draws_like(self, reference: str | Path, n: int) -> Any:
        from showerforge.data.points import read_points

        inc = read_points(self.split_spec(reference)[0]).incident_mev
        return np.tile(inc, int(math.ceil(n / len(inc))))[:n]

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, reference: str | Path, candidate: str | Path, output: Path, **options: Any) -> dict[str, Any]:
        """W1 x 100 of standardised observables and a classifier AUC, each beside the Geant4 floor.

        Options: ``seed``, ``quick``, ``plots``, ``max_samples``, ``floor_reference``, ``repeats``,
        ``progress`` and those of :class:`showerforge.evaluation.points.settings.PointSettings`
        (``threshold_mip``, ``n_bootstrap``, ``classifier``, ...); the voxel and jet options are refused.
        """
        from showerforge.evaluation.points.report import evaluate_point_files

        others = ("efp_normed", "nplm_toys", "classifiers", "geometry", "distances")
        fpd = options.get("fpd_extrapolation")
        self.refuse_options(
            {**options, "fpd_extrapolation": None if fpd == "jetnet" else fpd}, (*others, "fpd_extrapolation")
        )
        opts = {k: v for k, v in options.items() if v is not None and k not in (*others, "fpd_extrapolation")}
        return evaluate_point_files(reference, candidate, output, **opts)

    def summary(self, metrics: dict[str, Any]) -> str:
        from showerforge.evaluation.points.report import format_points_summary

        return format_points_summary(metrics)

    def overlay_plots(
        self, reference: str | Path, candidates: list[str], names: list[str], out: Path, **options: Any
    ) -> list[dict[str, str]]:
        from showerforge.evaluation.points.plots import point_overlays

        return point_overlays(reference, candidates, names, out, options)

    def headline_metrics(self) -> list[tuple[str, str, float]]:
        return [("AUC", "classifier.auc", 1.0), ("W1x100 mean", "w1x100_mean", 1.0)]

    # ------------------------------------------------------------------ references
    def simulate(self, output: str | Path, settings: Mapping[str, Any], on_status: Status | None = None) -> Path:
        from showerforge.simulate.campaign import simulate_shower_file

        return simulate_shower_file(output=output, on_status=on_status, points=True, **dict(settings))
